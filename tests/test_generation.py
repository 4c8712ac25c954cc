"""Generation and export: seeded, one file per melody per format, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import Melody
from rlcomposer.prior.generation import GenerationConfig, export_melodies, sample_melodies
from rlcomposer.prior.registry import CorpusModel, RandomModel, resolve_model


def test_same_seed_same_melodies_other_seed_different(tiny_prior_dir):
    model = resolve_model(str(tiny_prior_dir))
    a = sample_melodies(model, GenerationConfig(num_melodies=4, seed=5))
    b = sample_melodies(model, GenerationConfig(num_melodies=4, seed=5))
    c = sample_melodies(model, GenerationConfig(num_melodies=4, seed=6))
    assert [m.to_json() for m in a] == [m.to_json() for m in b]
    assert a != c
    assert all(m.num_steps == 64 for m in a)
    assert a[0].metadata["seed"] == 5 and a[0].metadata["model"] == "tiny-prior"


def test_export_writes_every_format_that_reads_back(tmp_path, tiny_prior_dir):
    melodies = sample_melodies(resolve_model(str(tiny_prior_dir)), GenerationConfig(num_melodies=2))
    files = export_melodies(melodies, tmp_path / "out", ("midi", "musicxml", "wav", "json"))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"melody-{i:03d}.{ext}" for i in range(2)
                           for ext in ("mid", "musicxml", "wav", "json"))
    assert len(files) == 8
    for index, melody in enumerate(melodies):
        canonical = melody.canonical()
        assert Melody.load(tmp_path / "out" / f"melody-{index:03d}.json") == melody
        assert Melody.load(tmp_path / "out" / f"melody-{index:03d}.mid") == canonical
        assert Melody.load(tmp_path / "out" / f"melody-{index:03d}.musicxml") == canonical
        assert (tmp_path / "out" / f"melody-{index:03d}.wav").read_bytes()[:4] == b"RIFF"


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    melodies = [Melody.from_notes([(60, 0, 1)], 16)] * 3

    def broken_wav(*args, **kwargs):
        raise RLComposerError("synthesiser exploded")

    monkeypatch.setattr("rlcomposer.music.melody.render_wav_bytes", broken_wav)
    with pytest.raises(RLComposerError):
        export_melodies(melodies, tmp_path / "out", ("json", "wav"))
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [({"num_melodies": 0}, "--n"), ({"seed": -1}, "--seed"), ({"formats": ("mp3",)}, "mp3"),
     ({"temperature": 0.0}, "--temperature"), ({"num_bars": 0}, "--bars")],
)
def test_bad_generation_settings(kwargs, message):
    with pytest.raises(RLComposerError, match=message):
        GenerationConfig(**kwargs)


def test_unknown_model_name():
    with pytest.raises(RLComposerError, match="unknown model 'mozart'"):
        resolve_model("mozart")


def test_corpus_and_random_models():
    rng = np.random.default_rng(0)
    tunes = [np.arange(2, 2 + 80) % 39 for _ in range(3)]
    corpus = CorpusModel(tunes).sample(5, 32, rng)
    assert len(corpus) == 5 and all(m.num_steps == 32 for m in corpus)
    assert corpus[0].tokens.tolist() == tunes[0][:32].tolist()
    random = RandomModel().sample(3, 16, rng)
    assert len({m.tokens.tobytes() for m in random}) == 3
