"""Sampling melodies from a model and exporting them as files a musician can open."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import VOCAB_SIZE, Melody
from rlcomposer.music.metre import MAX_BARS, Metre, MetreError, parse_metre, pickup_from_beats
from rlcomposer.prior.model import MelodyCondition
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

FORMAT_SUFFIXES = {"midi": ".mid", "musicxml": ".musicxml", "wav": ".wav", "json": ".json", "abc": ".abc"}


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
    """Length of each melody in full bars of its metre (1..32), after any pick-up."""
    pickup_beats: float = 0.0
    """A pick-up (anacrusis) of this many quarter notes before the first full bar (0: the melodies
    start on the downbeat); shorter than a bar, on the sixteenth grid (``--pickup 1.5`` in 6/8)."""
    metre: str | None = None
    """Time signature (2/4, 3/4, 4/4, 2/2, 3/8, 6/8, 9/8, 12/8, 6/4, 3/2, 4/2); None: a tuned
    policy's own, else 4/4."""
    key: str = "C"
    """Tonic to transpose to (C, G, D, Bb, F#, ...); melodies are sampled on C."""
    mode: str | None = None
    """Mode: major, minor, dorian, mixolydian, phrygian, lydian or locrian; None: a tuned
    policy's own, else major."""
    temperature: float = 1.0
    """Softmax temperature: below 1 is safer, above 1 is wilder."""
    top_k: int | None = None
    """Sample only among the k likeliest tokens (None: all)."""
    formats: tuple[str, ...] = ("midi", "musicxml", "wav", "json")
    """File formats to write: any of midi, musicxml, wav, json, abc."""
    tempo_bpm: float = 120.0
    """Quarter notes per minute in MIDI, MusicXML and WAV."""

    def __post_init__(self) -> None:
        for name, value in (("--n", self.num_melodies), ("--seed", self.seed), ("--bars", self.num_bars),
                            ("--temperature", self.temperature), ("--top-k", self.top_k),
                            ("--tempo", self.tempo_bpm)):
            GENERATION_RANGES[name].check(value, name)
        if self.metre is not None:
            object.__setattr__(self, "metre", parse_metre(self.metre).name)
        if self.pickup_beats:
            try:  # against 4/4 unless a metre is named; condition_for checks the model's own
                pickup_from_beats(self.pickup_beats, parse_metre(self.metre))
            except MetreError as error:
                raise RLComposerError(f"--pickup: {error}") from None
        Key(self.key, self.mode or "major")  # validates the tonic spelling and the mode
        unknown = [f for f in self.formats if f not in FORMAT_SUFFIXES]
        if unknown or not self.formats:
            raise RLComposerError(
                f"--format: unknown format '{unknown[0] if unknown else ''}' "
                f"(choose from {', '.join(FORMAT_SUFFIXES)})"
            )

    # ---- derived values --------------------------------------------------
    def condition_for(self, model: MelodyModel) -> MelodyCondition:
        """Metre, mode and length: the config's, where it names them, else the model's own
        (a tuned policy's metre and mode), else 4/4 major."""
        own = tuned_condition(model)
        metre = parse_metre(self.metre or (own.metre if own else None))
        mode = self.mode or (own.mode if own else "major")
        try:
            pickup = pickup_from_beats(self.pickup_beats, metre)
        except MetreError as error:
            raise RLComposerError(f"--pickup: {error}") from None
        return MelodyCondition(metre, mode, pickup + self.num_bars * metre.steps_per_bar, pickup)

    @property
    def time_signature(self) -> Metre:
        return parse_metre(self.metre)

    @property
    def num_steps(self) -> int:
        """Steps of a melody in the config's metre (4/4 when it names none), pick-up included."""
        metre = self.time_signature
        return pickup_from_beats(self.pickup_beats, metre) + self.num_bars * metre.steps_per_bar


def tuned_condition(model: MelodyModel) -> MelodyCondition | None:
    """The metre and mode a tuned policy was tuned for (through a best-of-N wrapper), or None."""
    while not hasattr(model, "prior") and hasattr(model, "base"):
        model = model.base
    prior = getattr(model, "prior", None)
    return getattr(prior, "tuned_condition", None)


def sample_melodies(model: MelodyModel, config: GenerationConfig) -> list[Melody]:
    """``config.num_melodies`` melodies in the config's metre and key, with provenance
    (model, seed, index) in metadata. They are sampled on C and moved to the key's
    tonic (by -5..+6 semitones, or an octave further to stay inside the range)."""
    rng = np.random.default_rng(config.seed)
    condition = config.condition_for(model)
    melodies = model.sample(config.num_melodies, condition.num_steps, rng, config.temperature,
                            config.top_k, condition=condition)
    key = Key(config.key, condition.mode)
    return [
        melody.in_key(key).with_metadata(model=model.name, seed=config.seed, index=index,
                                         temperature=config.temperature, top_k=config.top_k)
        for index, melody in enumerate(melodies)
    ]


def existing_melody_files(out_dir: str | Path, stem: str = "melody") -> list[Path]:
    """Melody files (``STEM-NNN.mid`` / ``.musicxml`` / ``.wav`` / ``.json`` / ``.abc``) already in ``out_dir``."""
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
