"""Pick-ups (a partial bar before bar 1) and finals, from the corpus to the files a musician opens."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rlcomposer.checkpoints import save_model_dir
from rlcomposer.music.keys import MODES
from rlcomposer.music.melody import Melody
from rlcomposer.music.metre import METRE_NAMES
from rlcomposer.music.notes import note_events
from rlcomposer.prior.model import (
    ConditionError,
    MelodyCondition,
    MelodyPrior,
    PriorConfig,
    load_prior,
)
from rlcomposer.prior.training import _crop_batches, final_table


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlcomposer.cli", *args],
                          capture_output=True, text=True, timeout=300)


def pickup_prior(finals=()) -> MelodyPrior:
    torch.manual_seed(0)
    return MelodyPrior(PriorConfig(embedding_dim=8, hidden_size=16, metres=METRE_NAMES, modes=MODES,
                                   pickups=True, finals=finals))


@pytest.fixture(scope="module")
def pickup_prior_dir(tmp_path_factory):
    prior = pickup_prior()
    return save_model_dir(tmp_path_factory.mktemp("models") / "pickups", "prior", prior.config,
                          prior.state_dict())


@pytest.mark.parametrize("metre, beats, pickup_steps", [("4/4", "1", 4), ("6/8", "1.5", 6)])
def test_generate_with_a_pickup_writes_an_incomplete_first_measure(tmp_path, pickup_prior_dir, metre, beats,
                                                                   pickup_steps):
    from music21 import converter, stream

    result = run_cli("generate", "--model", str(pickup_prior_dir), "--n", "2", "--bars", "2", "--metre", metre,
                     "--pickup", beats, "--out", str(tmp_path), "--format", "musicxml,json,midi")
    assert result.returncode == 0, result.stderr
    melody = Melody.load(tmp_path / "melody-000.json")
    bar = melody.metre.steps_per_bar
    assert melody.pickup_steps == pickup_steps and melody.num_steps == pickup_steps + 2 * bar
    assert json.loads((tmp_path / "melody-000.json").read_text())["pickup_steps"] == pickup_steps
    score = converter.parse(str(tmp_path / "melody-000.musicxml"))
    measures = list(score.parts[0].getElementsByClass(stream.Measure))
    assert measures[0].duration.quarterLength == float(beats)  # the pick-up alone, no rests before it
    assert [m.duration.quarterLength for m in measures[1:]] == [bar / 4] * 2
    assert Melody.load(tmp_path / "melody-000.mid").pickup_steps == pickup_steps


@pytest.mark.parametrize("beats, why", [("-1", "at least 0"), ("nan", "finite"), ("inf", "finite"),
                                         ("4", "as long as a bar"), ("0.1", "off the sixteenth-note grid")])
def test_a_pickup_that_cannot_be_is_refused_with_one_line_and_nothing_written(tmp_path, pickup_prior_dir,
                                                                              beats, why):
    out = tmp_path / "out"
    result = run_cli("generate", "--model", str(pickup_prior_dir), "--pickup", beats, "--out", str(out))
    assert result.returncode != 0
    assert why in result.stderr and "--pickup" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_earlier_prior_takes_no_pickup_and_says_so(tmp_path):
    torch.manual_seed(0)
    earlier = MelodyPrior(PriorConfig(embedding_dim=8, hidden_size=16, metres=METRE_NAMES, modes=MODES))
    directory = save_model_dir(tmp_path / "earlier", "prior", earlier.config, earlier.state_dict())
    assert load_prior(directory).config.pickups is False  # a config from before pick-ups still loads
    result = run_cli("generate", "--model", str(directory), "--pickup", "1", "--out", str(tmp_path / "out"))
    assert result.returncode != 0 and "before pick-ups" in result.stderr
    assert run_cli("generate", "--model", str(directory), "--n", "1", "--out", str(tmp_path / "ok")).returncode == 0


def test_the_pickup_moves_the_metric_position_of_every_step():
    """Step t of a melody with a 4-step pick-up sits where step t - 4 + 8 bars sits in one without:
    the same beat, bar of the phrase, phrase parity and bars to the end."""
    prior = pickup_prior().eval()
    bar, length = 16, 4 + 2 * 16
    tokens = torch.randint(2, 30, (1, length))
    previous = prior.shift_right(tokens)
    with_pickup = prior.embed(previous, torch.arange(length).view(1, -1),
                              prior.condition_batch(MelodyCondition("4/4", "major", length, 4), 1))
    shifted = prior.embed(previous, torch.arange(length).view(1, -1) - 4 + 8 * bar,
                          prior.condition_batch(MelodyCondition("4/4", "major", length - 4 + 8 * bar, 0), 1))
    assert torch.allclose(with_pickup, shifted)
    unshifted = prior.embed(previous, torch.arange(length).view(1, -1),
                            prior.condition_batch(MelodyCondition("4/4", "major", length, 0), 1))
    assert not torch.allclose(with_pickup, unshifted)


def test_crops_start_at_the_tune_or_on_its_bar_lines_after_the_pickup():
    sequences = [np.arange(4 + 16 * 40) % 30 + 2]
    starts = set()
    for seed in range(5):
        for _, _, batch_starts, _, _ in _crop_batches(sequences, 64, 8, np.random.default_rng(seed), [16], [4]):
            starts.update(int(s) for s in batch_starts)
    assert 0 in starts and all(s == 0 or (s - 4) % 16 == 0 for s in starts) and len(starts) > 3


def test_sampling_draws_finals_as_the_training_tunes_have_them():
    table = final_table([np.array([2, 1, 14]), np.array([2, 1, 16]), np.array([2, 14]), np.array([14, 14])],
                        [MelodyCondition()] * 4)  # finals C, D, C, C (tokens 14 = C4, 16 = D4)
    assert table[0][0] == pytest.approx(0.75) and table[0][2] == pytest.approx(0.25)
    prior = pickup_prior(finals=table)
    drawn = prior.draw_finals([MelodyCondition()] * 4000, torch.Generator().manual_seed(0))
    shares = np.bincount([c.final for c in drawn], minlength=12) / 4000
    assert shares[0] == pytest.approx(0.75, abs=0.03) and shares[2] == pytest.approx(0.25, abs=0.03)
    with pytest.raises(ConditionError, match="final"):
        MelodyCondition(final=12)


def test_corpus_tunes_keep_their_pickups_as_partial_bars(tmp_path_factory):
    from rlcomposer.corpus.build import build_corpus
    from rlcomposer.corpus.corpus import SPLITS, CorpusConfig

    corpus = build_corpus(CorpusConfig(max_tunes_per_collection=12, workers=1),
                          tmp_path_factory.mktemp("corpus"), progress=False)
    melodies = [m for split in SPLITS for m in corpus.melodies(split)]
    padded = [p for split in SPLITS for p in corpus.sequences(split, padded=True)]
    with_pickup = [m for m in melodies if m.pickup_steps]
    assert with_pickup, "the small corpus has tunes with pick-ups"
    for melody, cached in zip(melodies, padded, strict=True):
        onsets, _, _ = note_events(melody.tokens)
        assert onsets[0] == 0  # no tune opens with the padding's silence any more
        assert len(cached) - melody.num_steps == (melody.steps_per_bar - melody.pickup_steps) % melody.steps_per_bar
