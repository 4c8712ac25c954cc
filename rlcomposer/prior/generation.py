"""Sampling melodies from a model and exporting them as files a musician can open."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import MAX_BARS, STEPS_PER_BAR, VOCAB_SIZE, Melody
from rlcomposer.prior.registry import MelodyModel
from rlcomposer.validation import SEED, Range, above, between

BARS = between(1, MAX_BARS, whole=True)
"""Melody length in bars (the named limit ``MAX_BARS``)."""
MELODY_COUNT = between(1, 100_000, whole=True)
"""Melodies one command samples."""
TEMPERATURE = above(0, 100)
"""Softmax temperature."""
TEMPO_BPM = between(20, 400)
"""Quarter notes per minute of MIDI, MusicXML and WAV."""

FORMAT_SUFFIXES = {"midi": ".mid", "musicxml": ".musicxml", "wav": ".wav", "json": ".json"}


GENERATION_RANGES = {
    "--n": MELODY_COUNT, "--seed": SEED, "--bars": BARS, "--temperature": TEMPERATURE,
    "--top-k": Range(1, VOCAB_SIZE, whole=True, optional=True), "--tempo": TEMPO_BPM,
}
"""Where each number of a :class:`GenerationConfig` may lie, by its ``generate`` option."""


@dataclass(frozen=True)
class GenerationConfig:
    """What ``rlcomposer generate`` samples and writes."""

    model: str = "prior"
    """A model directory, or ``prior`` / ``corpus`` / ``random``."""
    num_melodies: int = 8
    """How many melodies."""
    seed: int = 0
    """Fixes the melodies: the same seed gives byte-identical JSON."""
    num_bars: int = 4
    """Length of each melody in 16-step bars."""
    temperature: float = 1.0
    """Softmax temperature: below 1 is safer, above 1 is wilder."""
    top_k: int | None = None
    """Sample only among the k likeliest tokens (None: all)."""
    formats: tuple[str, ...] = ("midi", "musicxml", "wav", "json")
    """File formats to write: any of midi, musicxml, wav, json."""
    tempo_bpm: float = 120.0
    """Quarter notes per minute in MIDI, MusicXML and WAV."""

    def __post_init__(self) -> None:
        for name, value in (("--n", self.num_melodies), ("--seed", self.seed), ("--bars", self.num_bars),
                            ("--temperature", self.temperature), ("--top-k", self.top_k),
                            ("--tempo", self.tempo_bpm)):
            GENERATION_RANGES[name].check(value, name)
        unknown = [f for f in self.formats if f not in FORMAT_SUFFIXES]
        if unknown or not self.formats:
            raise RLComposerError(
                f"--format: unknown format '{unknown[0] if unknown else ''}' "
                f"(choose from {', '.join(FORMAT_SUFFIXES)})"
            )

    @property
    def num_steps(self) -> int:
        return self.num_bars * STEPS_PER_BAR


def sample_melodies(model: MelodyModel, config: GenerationConfig) -> list[Melody]:
    """``config.num_melodies`` melodies, with provenance (model, seed, index) in metadata."""
    rng = np.random.default_rng(config.seed)
    melodies = model.sample(config.num_melodies, config.num_steps, rng, config.temperature, config.top_k)
    return [
        melody.with_metadata(model=model.name, seed=config.seed, index=index,
                             temperature=config.temperature, top_k=config.top_k)
        for index, melody in enumerate(melodies)
    ]


def existing_melody_files(out_dir: str | Path, stem: str = "melody") -> list[Path]:
    """Melody files (``STEM-NNN.mid`` / ``.musicxml`` / ``.wav`` / ``.json``) already in ``out_dir``."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    suffixes = set(FORMAT_SUFFIXES.values())
    return sorted(p for p in out_dir.glob(f"{stem}-*") if p.suffix in suffixes and p.is_file())


def check_out_dir(out_dir: str | Path, overwrite: bool = False, stem: str = "melody") -> None:
    """Refuse an ``--out`` that is a file, or that already holds melodies (unless ``overwrite``)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RLComposerError(f"--out '{out_dir}' exists and is not a directory")
    existing = existing_melody_files(out_dir, stem)
    if existing and not overwrite:
        raise RLComposerError(f"--out '{out_dir}' already holds {len(existing)} melody files ({existing[0].name}, "
                              "...): choose another folder, or pass --overwrite to replace them")


def export_melodies(
    melodies: Sequence[Melody],
    out_dir: str | Path,
    formats: Sequence[str] = ("midi", "musicxml", "wav", "json"),
    tempo_bpm: float = 120.0,
    stem: str = "melody",
    progress: bool = False,
    overwrite: bool = True,
) -> list[Path]:
    """Write one file per melody per format into ``out_dir``.

    Files are rendered into a staging folder first and moved in only when all
    are written, so a failure leaves nothing half-written in ``out_dir``. Melody
    files already there are an error unless ``overwrite``; then they are replaced:
    the folder holds this call's melodies only.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, stem)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RLComposerError(f"--out '{out_dir}': cannot create it ({error.strerror})") from None
    staging = Path(tempfile.mkdtemp(prefix=".rlcomposer-export-", dir=out_dir))
    width = max(3, len(str(len(melodies) - 1)))
    jobs = [(i, m, f) for i, m in enumerate(melodies) for f in formats]
    iterator = jobs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(jobs, desc="writing files", unit="file")
    try:
        names = []
        for index, melody, file_format in iterator:
            name = f"{stem}-{index:0{width}d}{FORMAT_SUFFIXES[file_format]}"
            melody.save(staging / name, tempo_bpm=tempo_bpm)
            names.append(name)
        written = []
        for old in existing_melody_files(out_dir, stem):
            if old.name not in names:
                old.unlink()
        for name in names:
            target = out_dir / name
            (staging / name).replace(target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
