"""The folk-tune corpus: music21's bundled ABC collections as token arrays.

The monophonic folk collections that ship inside music21 (see
:data:`COLLECTIONS`) are parsed once, tune by tune, into :class:`Melody` tokens
(the sixteenth-note grid of :mod:`rlcomposer.music.melody`) and cached on disk as
compact arrays. Nothing is ever downloaded.

What a kept tune looks like:

* monophonic, in 2/4, 4/4 or 2/2 (``C`` and ``C|`` included) throughout;
* transposed to C major / A minor from its key signature: ``n`` sharps (flats
  negative) put the major tonic ``7·n mod 12`` semitones above C, and the tune
  moves by the shift into ``-5..+6`` that takes that tonic to C (modes follow
  their signature, so a D-mixolydian tune with one sharp lands on the white
  keys as G mixolydian); then by whole octaves if needed so that every pitch
  fits MIDI 48..84;
* a pick-up (anacrusis) is padded with leading silence so that bar lines fall
  on multiples of 16 steps (for 2/4, the first full 2/4 bar starts a 16-step
  bar); the end is padded with silence to whole 16-step bars; a full bar that
  an earlier short bar pushes off the bar lines (a first-time ending, a section
  end written without its pick-up, a transcription slip) gets silence before it
  (see :func:`bar_layout`); a tune needing that for over a quarter of its bars
  does not follow its metre and is skipped;
* repeats are not expanded: the tune is encoded as written; grace notes are
  dropped; chord symbols, annotations and slurs are ignored (see
  :func:`simplify_abc` for the music21 quirks this avoids).

Every tune that is not kept is counted under a reason (see :data:`SKIP_REASONS`);
``parsed == kept + sum(skipped_by_reason.values())`` always holds.

Tunes are split into train / validation / test by a hash of
``collection/file/tune-index`` (the tune's position among the ``X:`` headers
of its file), so the split is deterministic, disjoint by tune, and stable when
other tunes are added or skipped. Exact duplicates (the same tokens, e.g. a tune
printed twice in O'Neill's overlapping files) are kept once, so a tune cannot
sit in both train and test; the later copies count as ``"duplicate"``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import (
    MAX_PITCH,
    MIN_PITCH,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    VOCAB_SIZE,
    Melody,
    MelodyError,
    stream_notes,
    whole_bars,
)

COLLECTIONS = ("essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth")
"""The music21 corpus "composers" that hold monophonic folk tunes in ABC."""

SPLITS = ("train", "validation", "test")

ALLOWED_METRES = ("2/4", "4/4", "2/2")
"""Time signatures kept (``C`` reads as 4/4 and ``C|`` as 2/2)."""

MIN_BARS = 2
"""Tunes shorter than this many 16-step bars after encoding are skipped."""

MAX_REALIGNED_FRACTION = 0.25
"""Tunes with more bars than this share needing silence to reach a bar line are
skipped as ``"metre"``: their bars do not follow the declared metre."""

SKIP_REASONS = (
    "parse-error",  # music21 could not read the ABC text
    "polyphonic",  # several voices / parts
    "metre",  # no metre, another metre than 2/4, 4/4, 2/2, a metre change, bars that don't fit
    "chord",  # a chord or overlapping notes
    "off-grid",  # tuplets or other notes off the sixteenth-note grid
    "empty",  # no notes
    "pitch-range",  # cannot fit MIDI 48..84 after transposition to C
    "too-short",  # fewer than MIN_BARS bars after encoding
    "duplicate",  # the same tokens as a tune kept before it
    "invalid",  # anything else the Melody encoding rejects
)
"""Reasons a tune is skipped, counted in :class:`CorpusStats`."""

CACHE_FORMAT = "rlcomposer.corpus"  # the cache format's name (kept when the module moved)
CACHE_VERSION = 1
"""Bump when the encoding of tunes changes, so that old caches are not reused."""

_BUILD_COMMAND = "run `rlcomposer corpus build` first"


class CorpusError(RLComposerError):
    """The corpus cache is missing, corrupt or does not match the request."""


# --------------------------------------------------------------------- config
@dataclass(frozen=True)
class CorpusConfig:
    """What goes into a corpus. Every field but ``workers`` names the cache file."""

    collections: tuple[str, ...] = COLLECTIONS
    """Which music21 collections to read, a subset of :data:`COLLECTIONS`."""

    validation_fraction: float = 0.05
    """Share of tunes (by tune, not by step) in the validation split."""

    test_fraction: float = 0.05
    """Share of tunes in the test split; the rest is train."""

    workers: int = 2
    """Parser processes (1 parses in this process). Does not change the result."""

    max_tunes_per_collection: int | None = None
    """Parse only the first N tunes of each collection (in file order), for tests."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "collections", tuple(self.collections))
        unknown = [c for c in self.collections if c not in COLLECTIONS]
        if unknown or not self.collections:
            raise CorpusError(
                f"unknown collection(s) {unknown or '(none given)'}; choose from {list(COLLECTIONS)}"
            )
        if len(set(self.collections)) != len(self.collections):
            raise CorpusError(f"collections listed twice: {list(self.collections)}")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise CorpusError(f"{name} must be in [0, 1), got {value}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise CorpusError("validation_fraction + test_fraction must be below 1")
        if self.workers < 1:
            raise CorpusError(f"workers must be at least 1, got {self.workers}")
        if self.max_tunes_per_collection is not None and self.max_tunes_per_collection < 1:
            raise CorpusError(
                f"max_tunes_per_collection must be positive, got {self.max_tunes_per_collection}"
            )

    def content_dict(self) -> dict[str, Any]:
        """The fields that determine the corpus content (all but ``workers``)."""
        return {
            "collections": list(self.collections),
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "max_tunes_per_collection": self.max_tunes_per_collection,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "collections": list(self.collections)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "collections" in known:
            known["collections"] = tuple(known["collections"])
        return cls(**known)


def cache_key(config: CorpusConfig) -> str:
    """A short hash of what determines the content: the config, encoding and music21."""
    payload = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "music21": _music21_version(),
        "config": config.content_dict(),
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def cache_paths(config: CorpusConfig, cache_dir: str | Path) -> tuple[Path, Path]:
    """The ``.npz`` arrays and the ``.json`` manifest for ``config`` in ``cache_dir``."""
    cache_dir = Path(cache_dir)
    stem = f"corpus-{cache_key(config)}"
    return cache_dir / f"{stem}.npz", cache_dir / f"{stem}.json"


# ---------------------------------------------------------------------- stats
@dataclass
class CorpusStats:
    """Counts of a build (``parsed == kept + sum(skipped_by_reason.values())``)."""

    parsed: int = 0
    """Tunes read (each ``X:`` header is one tune), kept or not."""

    kept: int = 0
    """Tunes in the corpus."""

    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    """Tunes not kept, by reason (see :data:`SKIP_REASONS`)."""

    per_collection: dict[str, dict[str, Any]] = field(default_factory=dict)
    """For each collection: ``available``, ``parsed``, ``kept``, ``skipped_by_reason``."""

    tunes_per_split: dict[str, int] = field(default_factory=dict)
    steps_per_split: dict[str, int] = field(default_factory=dict)

    build_seconds: float = 0.0
    """Wall time of the cold build that wrote the cache."""

    load_seconds: float = 0.0
    """Wall time to read the cache (0 for a fresh build)."""

    from_cache: bool = False
    """True when this corpus was read from an existing cache."""

    music21_version: str = ""

    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    """Up to three skipped tunes per reason, as ``collection/file/index: message``."""

    slowest_tunes: dict[str, float] = field(default_factory=dict)
    """The five slowest tunes to parse (seconds), to find pathological ones."""

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusStats:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# --------------------------------------------------------------------- corpus
class Corpus:
    """Kept tunes as one concatenated token array with offsets, split ids and names.

    ``tokens[offsets[i]:offsets[i + 1]]`` are the tokens of tune ``i``; every tune
    is a whole number of 16-step bars. ``split_ids[i]`` indexes :data:`SPLITS`.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        offsets: np.ndarray,
        split_ids: np.ndarray,
        index: list[dict[str, Any]],
        stats: CorpusStats,
        config: CorpusConfig,
        path: Path | None = None,
    ):
        self.tokens = tokens
        self.offsets = offsets
        self.split_ids = split_ids
        self.index = index
        self.stats = stats
        self.config = config
        self.path = path

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.num_tunes(s)}" for s in SPLITS)
        return f"Corpus({len(self)} tunes: {counts})"

    def _ids(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise CorpusError(f"unknown split {split!r}; choose from {list(SPLITS)}")
        return np.flatnonzero(self.split_ids == SPLITS.index(split))

    def sequences(self, split: str) -> list[np.ndarray]:
        """The token arrays (``int64``) of the tunes in ``split``, in corpus order."""
        return [
            self.tokens[self.offsets[i] : self.offsets[i + 1]].astype(np.int64)
            for i in self._ids(split)
        ]

    def melodies(self, split: str) -> list[Melody]:
        """The tunes of ``split`` as melodies, with title/collection/source metadata."""
        return [
            Melody(
                self.tokens[self.offsets[i] : self.offsets[i + 1]],
                {**self.index[i], "split": split},
            )
            for i in self._ids(split)
        ]

    def num_tunes(self, split: str) -> int:
        return int(self._ids(split).size)

    def num_steps(self, split: str) -> int:
        ids = self._ids(split)
        return int(np.sum(self.offsets[ids + 1] - self.offsets[ids]))


# ------------------------------------------------------------- ABC, one tune
_X_HEADER = re.compile(r"^X:", re.MULTILINE)
_TITLE = re.compile(r"^T:\s*(.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class TuneText:
    """One tune's ABC text and where it came from."""

    collection: str
    source: str  # file name inside the collection
    tune_index: int  # position among the X: headers of the file (0-based)
    text: str

    @property
    def key(self) -> str:
        return f"{self.collection}/{self.source}/{self.tune_index}"


def split_abc_tunes(text: str) -> list[str]:
    """Split an ABC file into tunes at the ``X:`` headers.

    File-header lines before the first ``X:`` that are not comments or blank
    (fields such as ``L:`` or ``M:`` that the ABC standard applies to every
    tune) are put at the start of each tune.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    starts = [m.start() for m in _X_HEADER.finditer(text)]
    if not starts:
        return []
    header_lines = [
        line
        for line in text[: starts[0]].splitlines()
        if line.strip() and not line.lstrip().startswith("%")
    ]
    bounds = [*starts, len(text)]
    tunes = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        body = text[start:stop].strip("\n")
        if header_lines:
            first, _, rest = body.partition("\n")  # keep X: first
            body = "\n".join([first, *header_lines, rest])
        tunes.append(body + "\n")
    return tunes


_FIELD_LINE = re.compile(r"^\s*[A-Za-z+]:")
_QUOTED = re.compile(r'"[^"\n]*"')
_PROTECTED = re.compile(r"(![^!\n]*!|\+[^+\n]*\+|\[[A-Za-z]:[^\]\n]*\])")
_SLUR = re.compile(r"\((?!\d)|\)")


def _simplify_music_line(line: str) -> str:
    line = _QUOTED.sub("", line.split("%", 1)[0])
    pieces = _PROTECTED.split(line)  # odd pieces: !decorations!, +decorations+, [X:fields]
    for i in range(0, len(pieces), 2):
        pieces[i] = _SLUR.sub("", pieces[i]).replace("H", "")
    return "".join(pieces)


def _music_lines(text: str) -> list[str]:
    return [
        line
        for line in text.split("\n")
        if not _FIELD_LINE.match(line) and not line.lstrip().startswith("%")
    ]


def simplify_abc(text: str) -> str:
    """Drop what does not change the notes from the music lines of an ABC tune.

    Removed: quoted strings (chord symbols, annotations, fingerings), slur marks,
    the fermata shorthand ``H`` and trailing comments; header fields and
    ``!decorations!`` are untouched and tuplet marks (``(3``) kept. This works
    around music21 10.5, whose ABC reader drops the note after an annotation
    such as ``">"d`` and after ``H``, and keeps a slur that ABC closes
    ambiguously (``((3abc)``) open to the end of the tune, re-measuring the whole
    spanner on every note (tunes full of slurred triplets took ~1 s to parse
    instead of ~30 ms).
    """
    return "\n".join(
        line
        if _FIELD_LINE.match(line) or line.lstrip().startswith("%")
        else _simplify_music_line(line)
        for line in text.split("\n")
    )


def _title(text: str) -> str:
    match = _TITLE.search(text)
    return match.group(1) if match and match.group(1) else "(untitled)"


def _parse_abc(text: str):
    from music21 import converter, stream

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(simplify_abc(text), format="abc")
    except Exception as error:  # music21 raises many kinds on malformed ABC
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MelodyError(f"music21 cannot parse the tune: {message}", "parse-error") from None
    if isinstance(score, stream.Opus):
        raise MelodyError("the text holds several tunes", "parse-error")
    if isinstance(score, stream.Score):
        parts = list(score.parts)
        if len(parts) > 1:
            raise MelodyError(f"{len(parts)} voices: not monophonic", "polyphonic")
        if parts:
            return parts[0]
    return score


_METRE_FIELD = re.compile(r"^M:([^\n]*)|\[M:([^\]\n]*)\]", re.MULTILINE)
_METRE_TEXT_OK = {"2/4", "4/4", "2/2", "C", "C|"}


def check_metre_text(text: str) -> None:
    """Skip early (reason ``"metre"``) a tune whose ``M:`` fields name another metre.

    Half the tunes are in 6/8, 3/4, ...: this saves parsing them. Tunes whose
    fields look allowed (or that have none) are still checked on the parsed
    stream by music21's reading.
    """
    for match in _METRE_FIELD.finditer(text):
        value = (match.group(1) if match.group(1) is not None else match.group(2) or "")
        value = "".join(value.split("%", 1)[0].split())
        if value not in _METRE_TEXT_OK:
            raise MelodyError(f"metre {value or '(empty)'} is not one of 2/4, 4/4, 2/2", "metre")


def _metre(part) -> str:
    from music21 import meter

    metres = {ts.ratioString for ts in part.recurse().getElementsByClass(meter.TimeSignature)}
    if not metres:
        raise MelodyError("no metre", "metre")
    if len(metres) > 1:
        raise MelodyError(f"metre changes ({', '.join(sorted(metres))})", "metre")
    (metre,) = metres
    if metre not in ALLOWED_METRES:
        raise MelodyError(f"metre {metre} is not one of {', '.join(ALLOWED_METRES)}", "metre")
    return metre


def _key_sharps(part) -> int:
    from music21 import key

    signature = part.recurse().getElementsByClass(key.KeySignature).first()
    return int(signature.sharps) if signature is not None else 0


def transposition_to_c(sharps: int, low: int, high: int) -> int:
    """Semitones that move a key signature of ``sharps`` to C and ``low..high`` into range.

    The shift by key is in ``-5..+6``; whole octaves are added only when needed.
    Raises :class:`MelodyError` (``"pitch-range"``) when the span cannot fit.
    """
    shift = -((7 * sharps) % 12)
    if shift < -5:
        shift += 12
    if high - low > MAX_PITCH - MIN_PITCH:
        raise MelodyError(
            f"the tune spans {high - low} semitones, more than {MAX_PITCH - MIN_PITCH}",
            "pitch-range",
        )
    if high + shift > MAX_PITCH:
        shift -= 12 * -(-(high + shift - MAX_PITCH) // 12)
    elif low + shift < MIN_PITCH:
        shift += 12 * -(-(MIN_PITCH - low - shift) // 12)
    if low + shift < MIN_PITCH or high + shift > MAX_PITCH:
        raise MelodyError(
            f"no octave puts MIDI {low}-{high} moved to C into {MIN_PITCH}-{MAX_PITCH}",
            "pitch-range",
        )
    return shift


@dataclass(frozen=True)
class BarLayout:
    """Where silence goes so that bar lines fall on the 16-step grid.

    ``pickup_padding`` steps of silence come first. ``inserts`` lists
    ``(raw_step, steps)``: before the full-length bar that starts at ``raw_step``
    of the written tune (off the grid because an earlier bar was short, e.g. a
    first-time ending or a section's last bar written without its pick-up),
    ``steps`` of silence complete the previous bar.
    """

    pickup_padding: int = 0
    inserts: tuple[tuple[int, int], ...] = ()

    def start(self, raw: int) -> int:
        """Where a note that starts at ``raw`` starts in the encoding."""
        return raw + self.pickup_padding + sum(n for at, n in self.inserts if at <= raw)

    def end(self, raw: int) -> int:
        """Where a note that ends at ``raw`` ends (a note held over a bar line is held
        through the inserted silence; one that ends on the bar line is not)."""
        return raw + self.pickup_padding + sum(n for at, n in self.inserts if at < raw)


def bar_layout(part, metre: str) -> BarLayout:
    """The padding that puts every full-length bar of ``part`` on a bar line.

    The first full-length measure starts a 16-step bar: everything before it is
    a pick-up, padded with leading silence (for 2/4 the first full 2/4 bar starts
    a 16-step bar). Later full-length bars that the written durations put off the
    bar lines (``bar_steps`` = 8 for 2/4, 16 otherwise) get silence before them.
    Short bars that add up to whole bars (a section's last bar and the next
    section's pick-up) need none.
    """
    from music21 import stream

    numerator, denominator = (int(x) for x in metre.split("/"))
    bar_steps = numerator * 16 // denominator
    full_starts: list[int] = []
    for measure in part.getElementsByClass(stream.Measure):
        length = float(measure.duration.quarterLength) * STEPS_PER_QUARTER
        start = float(measure.offset) * STEPS_PER_QUARTER
        if abs(length - bar_steps) < 1e-6 and abs(start - round(start)) < 1e-6:
            full_starts.append(round(start))
    if not full_starts:
        return BarLayout()
    pad = (-full_starts[0]) % STEPS_PER_BAR
    inserts: list[tuple[int, int]] = []
    shift = pad
    for start in full_starts:
        gap = -(start + shift) % bar_steps
        if gap:
            inserts.append((start, gap))
            shift += gap
    return BarLayout(pad, tuple(inserts))


def parse_abc_tune(text: str, collection: str, source: str) -> Melody:
    """One ABC tune (text starting at its ``X:`` header) as a melody in C major / A minor.

    Raises :class:`MelodyError` whose ``reason`` is one of :data:`SKIP_REASONS`
    (except ``"duplicate"``) when the tune is not usable. Metadata: ``title``,
    ``collection``, ``source``, ``metre``, ``key_sharps`` (of the original),
    ``transposition`` (semitones applied), ``pickup_padding`` (leading steps of
    silence) and ``realigned_bars`` (bars that needed silence before them to
    start on a bar line, see :func:`bar_layout`).
    """
    check_metre_text(text)
    if any("&" in _simplify_music_line(line) for line in _music_lines(text)):
        raise MelodyError("a voice overlay (&): not monophonic", "polyphonic")
    part = _parse_abc(text)
    metre = _metre(part)
    layout = bar_layout(part, metre)
    notes, end = stream_notes(part)
    if not notes:
        raise MelodyError("the tune has no notes", "empty")
    pitches = [p for p, _, _ in notes]
    sharps = _key_sharps(part)
    shift = transposition_to_c(sharps, min(pitches), max(pitches))
    num_steps = whole_bars(layout.end(end))
    if len(layout.inserts) > MAX_REALIGNED_FRACTION * num_steps / STEPS_PER_BAR:
        raise MelodyError(
            f"{len(layout.inserts)} bars off the bar lines: the bars do not follow {metre}",
            "metre",
        )
    if num_steps < MIN_BARS * STEPS_PER_BAR:
        raise MelodyError(
            f"{num_steps // STEPS_PER_BAR} bar(s) after encoding, fewer than {MIN_BARS}",
            "too-short",
        )
    metadata = {
        "title": _title(text),
        "collection": collection,
        "source": source,
        "metre": metre,
        "key_sharps": sharps,
        "transposition": shift,
        "pickup_padding": layout.pickup_padding,
        "realigned_bars": len(layout.inserts),
    }
    placed = []
    for pitch, start, length in notes:
        onset = layout.start(start)
        placed.append(
            (pitch + shift, onset / STEPS_PER_QUARTER,
             (layout.end(start + length) - onset) / STEPS_PER_QUARTER)
        )
    return Melody.from_notes(placed, num_steps, metadata)


# ------------------------------------------------------------------ the build
def collection_files(collection: str) -> list[Path]:
    """The ABC files of a music21 collection, sorted, without ``test*.abc``."""
    from music21 import corpus as m21corpus

    paths = [
        Path(p)
        for p in m21corpus.getComposer(collection, fileExtensions=("abc",))
        if not Path(p).name.lower().startswith("test")
    ]
    if not paths:
        raise CorpusError(f"music21 has no ABC files for collection {collection!r}")
    return sorted(paths, key=lambda p: p.name)


def iter_tunes(collection: str) -> Iterator[TuneText]:
    """Every tune of a collection, in file order (one per ``X:`` header)."""
    for path in collection_files(collection):
        text = path.read_text(encoding="utf-8", errors="replace")
        for index, tune in enumerate(split_abc_tunes(text)):
            yield TuneText(collection, path.name, index, tune)


def split_of(key: str, validation_fraction: float, test_fraction: float) -> int:
    """The split id (index into :data:`SPLITS`) of a tune, from a hash of its key."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_fraction:
        return SPLITS.index("test")
    if u < test_fraction + validation_fraction:
        return SPLITS.index("validation")
    return SPLITS.index("train")


def _parse_task(tune: TuneText) -> tuple[str, bytes | str, dict[str, Any], float]:
    """Worker: ``("ok", int8 token bytes, metadata, seconds)`` or ``("skip", reason, {}, s)``."""
    started = time.perf_counter()
    try:
        melody = parse_abc_tune(tune.text, tune.collection, tune.source)
    except MelodyError as error:
        reason = error.reason if error.reason in SKIP_REASONS else "invalid"
        return "skip", reason, {"message": str(error)}, time.perf_counter() - started
    except Exception as error:  # a music21 bug on one tune must not stop the build
        message = f"{type(error).__name__}: {error}"
        return "skip", "parse-error", {"message": message}, time.perf_counter() - started
    tokens = melody.tokens.astype(np.int8).tobytes()
    return "ok", tokens, melody.metadata, time.perf_counter() - started


def _init_worker() -> None:
    """Turn off music21's beaming for a build: ABC import calls it and it costs half
    the parse time; beams change no note or duration (checked on 600 tunes: the
    same tokens and skip reasons). Set in the worker processes; a one-process
    build sets it for the build only and restores it."""
    from music21 import stream

    stream.Stream.makeBeams = _no_beams  # type: ignore[method-assign]


def _no_beams(self, *, inPlace=False, **keywords):
    return None if inPlace else self


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    # fork is cheap (music21 is already imported); elsewhere spawn is the safe choice
    return multiprocessing.get_context("fork" if sys.platform == "linux" and "fork" in methods
                                       else "spawn")


def _parse_all(tunes: list[TuneText], workers: int, progress: bool):
    from tqdm import tqdm

    bar = tqdm(total=len(tunes), desc="parsing tunes", unit="tune", disable=not progress)
    try:
        if workers == 1 or len(tunes) < 2:
            from music21 import stream

            original = stream.Stream.__dict__["makeBeams"]
            _init_worker()  # the same reading as in the workers, restored below
            try:
                for tune in tunes:
                    yield _parse_task(tune)
                    bar.update()
            finally:
                stream.Stream.makeBeams = original  # type: ignore[method-assign]
            return
        import music21  # noqa: F401 - imported once before the workers fork

        chunksize = max(1, min(16, len(tunes) // (workers * 8)))
        with _pool_context().Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap(_parse_task, tunes, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()


def _build(config: CorpusConfig, progress: bool) -> Corpus:
    started = time.perf_counter()
    tunes: list[TuneText] = []
    available: dict[str, int] = {}
    for collection in config.collections:
        everything = list(iter_tunes(collection))
        available[collection] = len(everything)
        tunes.extend(everything[: config.max_tunes_per_collection])

    per_collection: dict[str, dict[str, Any]] = {
        c: {"available": available[c], "parsed": 0, "kept": 0, "skipped_by_reason": {}}
        for c in config.collections
    }
    chunks: list[bytes] = []
    index: list[dict[str, Any]] = []
    split_ids: list[int] = []
    seen: dict[bytes, str] = {}
    skipped_examples: dict[str, list[str]] = {}
    slowest: list[tuple[float, str]] = []
    for tune, (status, payload, metadata, seconds) in zip(
        tunes, _parse_all(tunes, config.workers, progress), strict=True
    ):
        counts = per_collection[tune.collection]
        counts["parsed"] += 1
        slowest = sorted([*slowest, (seconds, tune.key)], reverse=True)[:5]
        if status == "ok":
            assert isinstance(payload, bytes)
            if payload in seen:
                metadata = {"message": f"the same tokens as {seen[payload]}"}
                status, payload = "skip", "duplicate"
            else:
                seen[payload] = tune.key
        if status != "ok":
            assert isinstance(payload, str)
            skipped = counts["skipped_by_reason"]
            skipped[payload] = skipped.get(payload, 0) + 1
            examples = skipped_examples.setdefault(payload, [])
            if len(examples) < 3:
                examples.append(f"{tune.key}: {metadata.get('message', '')}")
            continue
        counts["kept"] += 1
        chunks.append(payload)
        index.append({**metadata, "tune_index": tune.tune_index})
        split_ids.append(split_of(tune.key, config.validation_fraction, config.test_fraction))

    tokens = np.frombuffer(b"".join(chunks), dtype=np.int8).copy()
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    split_array = np.array(split_ids, dtype=np.int8)

    skipped_total: Counter[str] = Counter()
    for counts in per_collection.values():
        counts["skipped_by_reason"] = dict(sorted(counts["skipped_by_reason"].items()))
        skipped_total.update(counts["skipped_by_reason"])
    stats = CorpusStats(
        parsed=sum(c["parsed"] for c in per_collection.values()),
        kept=sum(c["kept"] for c in per_collection.values()),
        skipped_by_reason=dict(sorted(skipped_total.items())),
        per_collection=per_collection,
        build_seconds=round(time.perf_counter() - started, 3),
        from_cache=False,
        music21_version=_music21_version(),
    )
    corpus = Corpus(tokens, offsets, split_array, index, stats, config)
    stats.tunes_per_split = {s: corpus.num_tunes(s) for s in SPLITS}
    stats.steps_per_split = {s: corpus.num_steps(s) for s in SPLITS}
    stats.skipped_examples = dict(sorted(skipped_examples.items()))
    stats.slowest_tunes = {k: round(s, 3) for s, k in slowest}
    return corpus


# ---------------------------------------------------------------------- cache
def _manifest(corpus: Corpus) -> dict[str, Any]:
    stats = corpus.stats.to_dict()
    stats.pop("from_cache")
    stats.pop("load_seconds")
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "cache_key": cache_key(corpus.config),
        "config": corpus.config.to_dict(),
        "music21_version": _music21_version(),
        "steps_per_bar": STEPS_PER_BAR,
        "stats": stats,
    }


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _save(corpus: Corpus, npz_path: Path, json_path: Path) -> None:
    manifest = _manifest(corpus)
    arrays = {
        "tokens": corpus.tokens.astype(np.int8),
        "offsets": corpus.offsets.astype(np.int64),
        "split_ids": corpus.split_ids.astype(np.int8),
        "index_json": np.array(json.dumps(corpus.index, ensure_ascii=False)),
        "manifest_json": np.array(json.dumps(manifest, sort_keys=True)),
    }
    _atomic_write(npz_path, lambda stream: np.savez_compressed(stream, **arrays))
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    _atomic_write(json_path, lambda stream: stream.write(text.encode("utf-8")))
    corpus.path = npz_path


def _load(npz_path: Path, config: CorpusConfig) -> Corpus:
    started = time.perf_counter()
    broken = (
        f"corpus cache {npz_path} is corrupt or unreadable; rebuild it with "
        "`rlcomposer corpus build --force` (build_corpus(..., force=True))"
    )
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            tokens = data["tokens"]
            offsets = data["offsets"]
            split_ids = data["split_ids"]
            index = json.loads(str(data["index_json"]))
            manifest = json.loads(str(data["manifest_json"]))
    except FileNotFoundError:
        raise
    except Exception as error:
        raise CorpusError(f"{broken} ({type(error).__name__}: {error})") from None
    n = len(index)
    consistent = (
        isinstance(manifest, dict)
        and manifest.get("format") == CACHE_FORMAT
        and tokens.dtype == np.int8
        and tokens.ndim == offsets.ndim == split_ids.ndim == 1
        and offsets.shape == (n + 1,)
        and split_ids.shape == (n,)
        and n > 0
        and offsets[0] == 0
        and offsets[-1] == tokens.size
        and bool(np.all(np.diff(offsets) > 0))
        and bool(np.all(split_ids < len(SPLITS)))
        and (tokens.size == 0 or (int(tokens.min()) >= 0 and int(tokens.max()) < VOCAB_SIZE))
    )
    if not consistent:
        raise CorpusError(f"{broken} (inconsistent arrays)")
    if manifest.get("version") != CACHE_VERSION:
        raise CorpusError(
            f"corpus cache {npz_path} has version {manifest.get('version')}, expected "
            f"{CACHE_VERSION}; rebuild it with `rlcomposer corpus build --force`"
        )
    stored = manifest.get("config")
    if not isinstance(stored, dict) or CorpusConfig.from_dict(stored).content_dict() != (
        config.content_dict()
    ):
        raise CorpusError(f"corpus cache {npz_path} was built with another config")
    stats = CorpusStats.from_dict(manifest.get("stats", {}))
    stats.from_cache = True
    stats.load_seconds = round(time.perf_counter() - started, 3)
    return Corpus(tokens, offsets, split_ids, index, stats, config, npz_path)


# ----------------------------------------------------------------------- API
def build_corpus(
    config: CorpusConfig,
    cache_dir: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
) -> Corpus:
    """Parse the collections of ``config`` into ``cache_dir``, or read the cache.

    A cache built with the same content config (and music21 version) is read
    instead of parsing again unless ``force``. A corrupt cache raises
    :class:`CorpusError` naming the file; ``force=True`` rebuilds it.
    """
    npz_path, json_path = cache_paths(config, cache_dir)
    if not force and npz_path.exists():
        return _load(npz_path, config)
    corpus = _build(config, progress)
    if len(corpus) == 0:
        raise CorpusError(
            f"no tune of {list(config.collections)} could be kept "
            f"(skipped: {corpus.stats.skipped_by_reason})"
        )
    _save(corpus, npz_path, json_path)
    return corpus


def load_corpus(cache_dir: str | Path, config: CorpusConfig | None = None) -> Corpus:
    """Read a corpus built by :func:`build_corpus` (default config if ``config`` is None).

    Raises :class:`CorpusError` if there is no cache ("run `rlcomposer corpus
    build` first") or it is corrupt.
    """
    config = config or CorpusConfig()
    npz_path, _ = cache_paths(config, cache_dir)
    try:
        return _load(npz_path, config)
    except FileNotFoundError:
        raise CorpusError(
            f"no corpus cache {npz_path.name} in {Path(cache_dir)}; {_BUILD_COMMAND}"
        ) from None


def _music21_version() -> str:
    """music21's version without importing it (a cached load need not pay for that)."""
    from importlib import metadata

    try:
        return metadata.version("music21")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        import music21

        return str(music21.__version__)
