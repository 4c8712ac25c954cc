"""Metres, keys and modes: melodies barred and spelled in their own metre and key, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rlcomposer.corpus.abc import parse_abc_tune, tune_key
from rlcomposer.music.keys import Key, KeyNameError, parse_key
from rlcomposer.music.melody import Melody, MelodyError
from rlcomposer.music.metre import METRE_NAMES, MetreError, parse_metre
from rlcomposer.music.metrics import compute_music_metrics, notes_not_in_key
from rlcomposer.music.theory import theory_reward
from rlcomposer.prior.model import ConditionError, MelodyCondition, MelodyPrior, PriorConfig


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlcomposer.cli", *args],
                          capture_output=True, text=True, timeout=300)


def tiny_conditioned_prior() -> MelodyPrior:
    torch.manual_seed(0)
    return MelodyPrior(PriorConfig(embedding_dim=8, hidden_size=16, metres=METRE_NAMES,
                                   modes=("major", "minor", "dorian", "mixolydian")))


# ---------------------------------------------------------------- metres, keys
def test_bar_lengths_and_families_follow_the_time_signature():
    assert {m: parse_metre(m).steps_per_bar for m in ("2/4", "3/4", "4/4", "6/8", "9/8", "12/8", "4/2")} == {
        "2/4": 8, "3/4": 12, "4/4": 16, "6/8": 12, "9/8": 18, "12/8": 24, "4/2": 32}
    assert [parse_metre(m).family for m in ("2/2", "3/8", "6/4")] == ["duple", "triple", "compound"]
    assert parse_metre("6/8").beat_steps == 6 and parse_metre("C|").name == "2/2"
    for bad in ("5/4", "7/8", "waltz", "6/0"):
        with pytest.raises(MetreError, match="unknown metre"):
            parse_metre(bad)


def test_key_signatures_and_scales_of_the_modes():
    assert Key("D", "dorian").sharps == 0 and Key("A", "mixolydian").sharps == 2
    assert Key("Bb", "major").sharps == -2 and Key("E", "minor").sharps == 1
    assert sorted(Key("C", "dorian").scale_pitch_classes()) == [0, 2, 3, 5, 7, 9, 10]
    assert parse_key("F#", "m").name == "F# minor"
    for tonic, mode in (("H", "major"), ("C", "bluesy"), ("G#", "major"), ("Cbb", "major")):
        with pytest.raises(KeyNameError):
            Key(tonic, mode)


# -------------------------------------------------------------------- melodies
def jig() -> Melody:
    """Two bars of 6/8 in D dorian."""
    notes = [(62, 0, 1.5), (64, 1.5, 1.5), (65, 3, 1), (69, 4, 0.5), (67, 4.5, 1.5), (62, 6, 3)]
    return Melody.from_notes(notes, 36, {"title": "jig"}, "6/8", Key("D", "dorian"))


def test_a_melody_keeps_its_metre_and_key_through_every_file_format(tmp_path):
    melody = jig()
    assert melody.num_bars == 3 and melody.steps_per_bar == 12
    for suffix in (".json", ".mid", ".musicxml"):
        back = Melody.load(melody.save(tmp_path / f"jig{suffix}"))
        assert back == melody and back.metre.name == "6/8" and back.key.name == "D dorian", suffix


def test_musicxml_carries_the_time_and_key_signature_music21_reads(tmp_path):
    from music21 import converter, key, meter

    melody = Melody.from_notes([(65, 0, 3), (69, 3, 3), (72, 6, 3), (77, 9, 3)] * 1 + [], 96, {},
                               "3/4", Key("F", "major"))
    score = converter.parse(melody.save(tmp_path / "waltz.musicxml"))
    assert [ts.ratioString for ts in score.recurse().getElementsByClass(meter.TimeSignature)] == ["3/4"]
    assert score.recurse().getElementsByClass(key.KeySignature).first().sharps == -1
    measures = score.parts[0].getElementsByClass("Measure")
    assert len(measures) == 8  # 96 steps of 12: eight bars of 3/4


def test_a_json_melody_whose_bars_do_not_fit_its_metre_is_refused():
    data = json.loads(jig().to_json())
    data["steps_per_bar"] = 16
    with pytest.raises(MelodyError, match="a bar of 6/8 is 12 steps"):
        Melody.from_json(json.dumps(data))
    data = json.loads(jig().to_json())
    data["metre"] = "5/4"
    with pytest.raises(MelodyError, match="unknown metre"):
        Melody.from_json(json.dumps(data))


def test_moving_to_a_key_transposes_inside_the_range():
    melody = Melody.from_notes([(60, 0, 1), (63, 1, 1), (67, 2, 2)], 16, {}, "4/4", Key("C", "minor"))
    moved = melody.in_key(Key("A", "minor"))
    assert [p for p, _, _ in moved.notes()] == [57, 60, 64] and moved.key.name == "A minor"
    high = Melody.from_notes([(84, 0, 1)], 16, {}, "4/4", Key("C", "major"))
    assert high.in_key(Key("D", "major")).notes()[0][0] == 74  # an octave lower stays in range


def test_metrics_and_theory_terms_judge_the_melodys_own_key():
    dorian = Melody.from_notes([(60, 0, 1), (63, 1, 1), (65, 2, 1), (70, 3, 1), (60, 4, 4)], 32, {},
                               "4/4", Key("C", "dorian"))
    assert not notes_not_in_key(dorian).any()  # E-flat and B-flat are C dorian's own
    assert notes_not_in_key(dorian.tokens).sum() == 2  # read as C major they are not
    metrics = compute_music_metrics([dorian.in_key(Key("D", "dorian"))])
    assert metrics.not_in_key == 0 and metrics.starts_with_tonic == 1
    assert theory_reward(dorian) > theory_reward(dorian.with_metre("4/4", Key("C", "major")))


# ---------------------------------------------------------------------- corpus
JIG = """X:1
T:A jig
M:6/8
L:1/8
K:Ador
E|ABA AGE|ABA A2 B|cBA GAB|cBA A2:|
"""


def test_a_jig_is_kept_in_six_eight_with_its_mode_and_tonic_on_c():
    melody = parse_abc_tune(JIG, "test", "jig.abc")
    assert melody.metre.name == "6/8" and melody.key.name == "C dorian"
    assert melody.metadata["mode"] == "dorian" and melody.metadata["key"] == "A dorian"
    assert melody.num_steps % 12 == 0 and melody.metadata["pickup_padding"] == 10


def test_triplets_are_quantised_to_the_grid_and_counted():
    reel = "X:1\nT:r\nM:4/4\nL:1/8\nK:D\n(3ABA GF E2 D2|DEFG A4|\n"
    melody = parse_abc_tune(reel, "test", "reel.abc")
    onsets = [round(o * 4) for _, o, _ in melody.notes()[:4]]
    assert onsets == [0, 1, 3, 4] and melody.metadata["quantised_notes"] == 2
    fast = "X:1\nT:r\nM:4/4\nL:1/16\nK:D\n(3ABA G2F2 E4 D4|D4E4F4G4|\n"
    with pytest.raises(MelodyError) as error:
        parse_abc_tune(fast, "test", "fast.abc")
    assert error.value.reason == "off-grid"


def test_the_mode_comes_from_the_key_field_or_else_from_the_final_note():
    assert tune_key("K:E Minor\n", 1)[0].name == "E minor"
    assert tune_key("K:G\n", 1, final_pitch=64) == (Key("E", "minor"), "final note")
    assert tune_key("K:G\n", 1, final_pitch=67) == (Key("G", "major"), "final note")
    with pytest.raises(MelodyError) as error:
        tune_key("K:HP\n", 0)
    assert error.value.reason == "mode"


# ------------------------------------------------------------------------ prior
def test_a_conditioned_prior_hears_the_metre_mode_and_length():
    prior = tiny_conditioned_prior().eval()
    tokens = torch.randint(0, 39, (2, 24))
    jig_logits = prior.sequence_logits(tokens, MelodyCondition("6/8", "dorian"))
    reel_logits = prior.sequence_logits(tokens, MelodyCondition("4/4", "dorian"))
    short_logits = prior.sequence_logits(tokens, MelodyCondition("6/8", "dorian", 12))
    assert not torch.allclose(jig_logits, reel_logits) and not torch.allclose(jig_logits, short_logits)
    stepwise, hidden = [], None
    previous = torch.full((2,), prior.config.bos_token)
    batch = prior.condition_batch(MelodyCondition("6/8", "dorian", 24), 2)
    for t in range(24):
        logits, hidden = prior.step(previous, t, hidden, batch)
        stepwise.append(logits)
        previous = tokens[:, t]
    assert torch.allclose(torch.stack(stepwise, 1), jig_logits, atol=1e-5)
    with pytest.raises(ConditionError, match="modes"):
        prior.sample(2, 12, torch.Generator(), condition=MelodyCondition("6/8", "lydian"))


def test_an_unconditioned_prior_refuses_other_metres():
    prior = MelodyPrior(PriorConfig(embedding_dim=8, hidden_size=16))
    assert prior.sample(2, 16, torch.Generator()).shape == (2, 16)
    with pytest.raises(ConditionError, match="only 4/4"):
        prior.sample(2, 12, torch.Generator(), condition=MelodyCondition("6/8"))


# ------------------------------------------------------------------------- CLI
def test_generate_writes_a_dorian_jig_and_an_eight_bar_waltz(tmp_path):
    from music21 import converter, key, meter

    result = run_cli("generate", "--n", "2", "--metre", "6/8", "--key", "D", "--mode", "dorian",
                     "--bars", "4", "--format", "json,musicxml", "--out", str(tmp_path / "jigs"), "--json")
    assert result.returncode == 0, result.stderr
    jig_file = Melody.load(tmp_path / "jigs" / "melody-000.json")
    assert (jig_file.metre.name, jig_file.key.name, jig_file.num_steps) == ("6/8", "D dorian", 48)
    score = converter.parse(tmp_path / "jigs" / "melody-000.musicxml")
    assert score.recurse().getElementsByClass(meter.TimeSignature).first().ratioString == "6/8"
    assert str(score.recurse().getElementsByClass(key.KeySignature).first()) == "D dorian"
    result = run_cli("generate", "--n", "1", "--metre", "3/4", "--key", "F", "--bars", "8",
                     "--format", "musicxml", "--out", str(tmp_path / "waltz"))
    assert result.returncode == 0, result.stderr
    waltz = Melody.load(tmp_path / "waltz" / "melody-000.musicxml")
    assert (waltz.metre.name, waltz.key.sharps, waltz.num_steps) == ("3/4", -1, 96)


@pytest.mark.parametrize("flags, message", [
    (("--metre", "5/4"), "unknown metre"),
    (("--mode", "bluesy"), "unknown mode"),
    (("--key", "H"), "unknown key"),
    (("--bars", "0"), "from 1 to 32"),
    (("--bars", "33"), "from 1 to 32"),
])
def test_generate_refuses_unknown_shapes_in_one_line_and_writes_nothing(tmp_path, flags, message):
    result = run_cli("generate", "--n", "1", "--out", str(tmp_path / "out"), *flags)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_corpus_model_gives_tunes_of_the_asked_metre():
    from rlcomposer.prior.registry import CorpusModel

    tunes = [parse_abc_tune(JIG, "t", "a"), jig().with_metre("6/8", Key("C", "dorian"))]
    sample = CorpusModel(tunes).sample(3, 24, np.random.default_rng(0),
                                       condition=MelodyCondition("6/8", "dorian"))
    assert all(m.metre.name == "6/8" and m.num_steps == 24 for m in sample)


# ------------------------------------------------------------------ tuning
@pytest.fixture(scope="module")
def conditioned_prior_dir(tmp_path_factory):
    from rlcomposer.checkpoints import save_model_dir

    prior = tiny_conditioned_prior()
    return save_model_dir(tmp_path_factory.mktemp("models") / "conditioned", "prior", prior.config,
                          prior.state_dict())


def test_the_environment_writes_bars_of_its_metre_and_passes_the_checker(conditioned_prior_dir):
    from dataclasses import replace

    from gymnasium.utils.env_checker import check_env

    from rlcomposer.prior.model import load_prior
    from rlcomposer.rl.environment import THEORY_ENV_CONFIG, MelodyEnv

    config = replace(THEORY_ENV_CONFIG, metre="6/8", mode="dorian", num_bars=2)
    env = MelodyEnv(config, load_prior(conditioned_prior_dir))
    assert env.observation_space.shape == (24,)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    for _ in range(23):
        env.step(env.action_space.sample())
    _, _, done, _, info = env.step(env.action_space.sample())
    assert done and info["melody"].metre.name == "6/8" and info["melody"].key.name == "C dorian"


def test_a_policy_tuned_in_six_eight_samples_six_eight_and_refuses_other_metres(tmp_path,
                                                                               conditioned_prior_dir):
    from rlcomposer.prior.registry import resolve_model
    from rlcomposer.rl.environment import MelodyEnvConfig
    from rlcomposer.rl.tuning import TuneConfig, tune

    config = TuneConfig(prior=str(conditioned_prior_dir), total_timesteps=4 * 24 * 2, n_envs=4,
                        minibatch_episodes=2, checkpoint_every=0,
                        env=MelodyEnvConfig(metre="6/8", mode="minor", num_bars=2, theory_in_key=1.0))
    tune(config, tmp_path / "jig", progress=False, log=lambda _: None)
    policy = resolve_model(str(tmp_path / "jig"))
    melodies = policy.sample(3, 24, np.random.default_rng(0))
    assert all((m.metre.name, m.key.name, m.num_steps) == ("6/8", "C minor", 24) for m in melodies)
    with pytest.raises(ConditionError, match="tuned for 6/8 minor"):
        policy.sample(1, 32, np.random.default_rng(0), condition=MelodyCondition("4/4", "minor"))
    result = run_cli("generate", "--model", str(tmp_path / "jig"), "--n", "1", "--out",
                     str(tmp_path / "out"), "--metre", "3/4")
    assert result.returncode == 2 and "tuned for 6/8 minor" in result.stderr
    result = run_cli("generate", "--model", str(tmp_path / "jig"), "--n", "1", "--key", "C",
                     "--format", "json", "--out", str(tmp_path / "out"))  # its own metre and mode
    assert result.returncode == 0, result.stderr
    written = Melody.load(tmp_path / "out" / "melody-000.json")
    assert (written.metre.name, written.key.name, written.num_steps) == ("6/8", "C minor", 48)


# ------------------------------------------------------------------ the pool
def test_a_pool_of_mixed_metres_keeps_each_melodys_shape_and_pairs_only_like_with_like(tmp_path):
    from rlcomposer.feedback import database
    from rlcomposer.feedback.selection import RandomSelection
    from rlcomposer.feedback.store import open_store

    url = f"sqlite:///{tmp_path / 'pool.sqlite3'}"
    store = open_store(url)
    try:
        rng = np.random.default_rng(0)
        jigs = [Melody(rng.integers(2, 39, 24), {}, "6/8", Key("D", "dorian")) for _ in range(4)]
        reels = [Melody(rng.integers(2, 39, 32)) for _ in range(4)]
        waltzes = [Melody(rng.integers(2, 39, 24), {}, "3/4", Key("F", "major")) for _ in range(4)]
        store.add_melodies(jigs + reels + waltzes, tag="mixed")
        back = store.get_melody(store.melody_ids(["mixed"])[0]).melody
        assert (back.metre.name, back.key.name) == ("6/8", "D dorian")
        rater = store.sign_in("Ann").id
        shapes = store.melody_shapes(["mixed"])
        selector = RandomSelection(repeat_share=0.0, tags=("mixed",), seed=1)
        for _ in range(40):
            item = selector.next_item(store, rater, "pair")
            a, b = item.melody_ids
            assert shapes[a] == shapes[b]  # 6/8 with 6/8, 4/4 with 4/4, never a jig against a waltz
    finally:
        database.dispose_engine(url)
