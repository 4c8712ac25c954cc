"""ABC parsing of one tune: music21's folk collections read tune by tune into melodies.

Owns the ABC side of the corpus: which music21 collections hold the tunes
(:data:`COLLECTIONS`) and their files (:func:`collection_files`,
:func:`iter_tunes`), the split of a file at its ``X:`` headers
(:func:`split_abc_tunes`), the clean-up music21 needs (:func:`simplify_abc`), the
metre and key checks, the bar layout, the transposition to C, and
:func:`parse_abc_tune`, which turns one tune's text into a :class:`Melody` on the
sixteenth-note grid of :mod:`rlcomposer.music.melody` or says why the tune is
skipped. The whole corpus (its config, split by tune and arrays) is
:mod:`rlcomposer.corpus.corpus`'s, building and caching it
:mod:`rlcomposer.corpus.build`'s (this module imports neither).

What a kept tune looks like:

* monophonic, in one metre of :data:`ALLOWED_METRES` throughout (``C`` is 4/4
  and ``C|`` 2/2);
* in a mode of :data:`~rlcomposer.music.keys.MODES`, read from its ``K:`` field
  (``K:Ador`` is A dorian, ``K:Em`` E minor, a bare tonic major);
* transposed so that its tonic is C (the reference tonic): by the shift into
  ``-5..+6`` that takes the tonic to C, then by whole octaves if needed so that
  every pitch fits MIDI 48..84; an A-minor tune becomes C minor, a D-dorian one
  C dorian, and the prior is told the mode;
* triplets and other tuplets quantised to the nearest sixteenth (the group keeps
  its span, each note moves by at most a third of a step; counted in the
  metadata as ``quantised_notes``), see :func:`~rlcomposer.music.melody.stream_notes`;
* a pick-up (anacrusis) is padded with leading silence so that bar lines fall
  on multiples of the metre's bar (12 steps for 6/8); the end is padded with
  silence to whole bars; a full bar that
  an earlier short bar pushes off the bar lines (a first-time ending, a section
  end written without its pick-up, a transcription slip) gets silence before it
  (see :func:`bar_layout`); a tune needing that for over a quarter of its bars
  does not follow its metre and is skipped;
* repeats are not expanded: the tune is encoded as written; grace notes are
  dropped; chord symbols, annotations and slurs are ignored (see
  :func:`simplify_abc` for the music21 quirks this avoids).

Every tune that is not kept has a reason (see :data:`SKIP_REASONS`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import Key, KeyNameError, parse_key
from rlcomposer.music.melody import (
    MAX_PITCH,
    MIN_PITCH,
    STEPS_PER_BAR,
    STEPS_PER_QUARTER,
    Melody,
    MelodyError,
    stream_notes,
    whole_bars,
)
from rlcomposer.music.metre import METRE_NAMES, Metre, MetreError, parse_metre

COLLECTIONS = ("essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth")
"""The music21 corpus "composers" that hold monophonic folk tunes in ABC."""

ALLOWED_METRES = METRE_NAMES
"""Time signatures kept (``C`` reads as 4/4 and ``C|`` as 2/2): every metre of
:data:`~rlcomposer.music.metre.METRES`."""

MIN_STEPS = 2 * STEPS_PER_BAR
"""Tunes shorter than this many steps (two bars of 4/4) after encoding are skipped."""

MAX_REALIGNED_FRACTION = 0.25
"""Tunes with more bars than this share needing silence to reach a bar line are
skipped as ``"metre"``: their bars do not follow the declared metre."""

SKIP_REASONS = (
    "parse-error",  # music21 could not read the ABC text
    "polyphonic",  # several voices / parts
    "metre",  # no metre, a metre not in ALLOWED_METRES, a metre change, bars that don't fit
    "mode",  # a K: field whose mode or tonic is not one of MODES (e.g. K:HP, a bagpipe key)
    "chord",  # a chord or overlapping notes
    "off-grid",  # notes off the sixteenth-note grid that are no tuplet (or a tuplet too fast)
    "empty",  # no notes
    "pitch-range",  # cannot fit MIDI 48..84 after transposition to C
    "too-short",  # fewer than MIN_STEPS steps after encoding
    "duplicate",  # the same tokens as a tune kept before it
    "invalid",  # anything else the Melody encoding rejects
)
"""Reasons a tune is skipped, counted in :class:`~rlcomposer.corpus.corpus.CorpusStats`
(``"duplicate"`` is found by the build, the others by :func:`parse_abc_tune`)."""


class CorpusError(RLComposerError):
    """A collection, corpus config or corpus cache that cannot be used: unknown,
    missing, corrupt or not matching the request."""


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
_METRE_TEXT_OK = {*ALLOWED_METRES, "C", "C|"}


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
            raise MelodyError(
                f"metre {value or '(empty)'} is not one of {', '.join(ALLOWED_METRES)}", "metre")


def _metre(part) -> Metre:
    from music21 import meter

    metres = {ts.ratioString for ts in part.recurse().getElementsByClass(meter.TimeSignature)}
    if not metres:
        raise MelodyError("no metre", "metre")
    if len(metres) > 1:
        raise MelodyError(f"metre changes ({', '.join(sorted(metres))})", "metre")
    (metre,) = metres
    try:
        return parse_metre(metre)
    except MetreError:
        raise MelodyError(f"metre {metre} is not one of {', '.join(ALLOWED_METRES)}",
                          "metre") from None


def _key_sharps(part) -> int:
    from music21 import key

    signature = part.recurse().getElementsByClass(key.KeySignature).first()
    return int(signature.sharps) if signature is not None else 0


_KEY_FIELD = re.compile(r"^K:\s*([^\n%]*)", re.MULTILINE)
_KEY_VALUE = re.compile(r"^([A-Ga-g][#b]?)\s*([A-Za-z]*)")


FINAL_NOTE_MODES = {0: "major", 9: "minor", 2: "dorian"}
"""Mode of a tune whose ``K:`` field names only a tonic, by its final note's degree
above that (major) tonic: a tune in ``K:G`` ending on E is E minor, on A A dorian.
Other endings keep the major reading: a tune ending on the fifth (D in ``K:G``) is
as often a major song ending on its dominant as a mixolydian one, so only a
written ``K:Dmix`` makes a tune mixolydian."""


def tune_key(text: str, sharps: int, final_pitch: int | None = None) -> tuple[Key, str]:
    """The key of a tune and where its mode came from (``"key field"`` or ``"final note"``).

    ``K:Ador`` is A dorian and ``K:E Minor`` E minor (the mode as written). Essen's
    songs and many others name only the signature's major key (``K:G``): then
    the mode is read from the final note (``final_pitch``, see
    :data:`FINAL_NOTE_MODES`), the usual rule for folk tunes, which end on their
    tonic. No ``K:`` field reads as the signature of ``sharps``. A field naming
    an unknown mode (``K:HP``, ``K:Gexp``) raises :class:`MelodyError` (``"mode"``).
    """
    from rlcomposer.music.melody import key_from_sharps

    match = _KEY_FIELD.search(text)
    value = " ".join(t for t in (match.group(1) if match else "").split() if "=" not in t)
    if not value or value.lower() == "none":
        return _mode_from_final(key_from_sharps(sharps), final_pitch)
    explicit = _explicit_key(value)
    if explicit.mode != "major" or _KEY_VALUE.match(value).group(2):
        return explicit, "key field"
    return _mode_from_final(explicit, final_pitch)


def _mode_from_final(major: Key, final_pitch: int | None) -> tuple[Key, str]:
    if final_pitch is None:
        return major, "key field"
    degree = (final_pitch - major.tonic_pitch_class) % 12
    mode = FINAL_NOTE_MODES.get(degree)
    if mode is None or mode == "major":
        return major, "final note"
    from music21 import key as m21key

    tonic = m21key.Key(major.tonic.replace("b", "-")).pitchFromDegree(
        {"minor": 6, "dorian": 2}[mode]).name.replace("-", "b")
    return Key(tonic, mode), "final note"


def _explicit_key(value: str) -> Key:
    parsed = _KEY_VALUE.match(value)
    if parsed is None:
        raise MelodyError(f"key {value!r} names no tonic", "mode")
    mode_word = parsed.group(2).lower()
    if mode_word.startswith("exp") or mode_word in ("hp",):
        raise MelodyError(f"key {value!r} is not a mode", "mode")
    mode = mode_word[:3] if mode_word else "major"
    if mode_word in ("m", "min", "minor"):
        mode = "minor"
    try:
        return parse_key(parsed.group(1)[0].upper() + parsed.group(1)[1:], mode)
    except KeyNameError as error:
        raise MelodyError(f"key {value!r}: {error}", "mode") from None


def transposition_to_c(sharps: int, low: int, high: int, tonic_pitch_class: int | None = None) -> int:
    """Semitones that move a tune's tonic to C and ``low..high`` into range.

    The tonic is ``tonic_pitch_class``, or when None the major tonic of a key
    signature of ``sharps`` (``7·sharps mod 12``). The shift by key is in
    ``-5..+6``; whole octaves are added only when needed. Raises
    :class:`MelodyError` (``"pitch-range"``) when the span cannot fit.
    """
    tonic = (7 * sharps) % 12 if tonic_pitch_class is None else tonic_pitch_class % 12
    shift = -tonic
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


def bar_layout(part, metre: Metre) -> BarLayout:
    """The padding that puts every full-length bar of ``part`` on a bar line.

    The first full-length measure starts a bar: everything before it is a
    pick-up, padded with leading silence. Later full-length bars that the
    written durations put off the bar lines (``metre.steps_per_bar`` apart) get
    silence before them. Short bars that add up to whole bars (a section's last
    bar and the next section's pick-up) need none.
    """
    from music21 import stream

    bar_steps = metre.steps_per_bar
    full_starts: list[int] = []
    for measure in part.getElementsByClass(stream.Measure):
        length = float(measure.duration.quarterLength) * STEPS_PER_QUARTER
        start = float(measure.offset) * STEPS_PER_QUARTER
        if abs(length - bar_steps) < 1e-6 and abs(start - round(start)) < 1e-6:
            full_starts.append(round(start))
    if not full_starts:
        return BarLayout()
    pad = (-full_starts[0]) % bar_steps
    inserts: list[tuple[int, int]] = []
    shift = pad
    for start in full_starts:
        gap = -(start + shift) % bar_steps
        if gap:
            inserts.append((start, gap))
            shift += gap
    return BarLayout(pad, tuple(inserts))


def parse_abc_tune(text: str, collection: str, source: str) -> Melody:
    """One ABC tune (text starting at its ``X:`` header) as a melody with its tonic on C.

    Raises :class:`MelodyError` whose ``reason`` is one of :data:`SKIP_REASONS`
    (except ``"duplicate"``) when the tune is not usable. The melody's metre is
    the tune's and its key C in the tune's mode. Metadata: ``title``,
    ``collection``, ``source``, ``metre``, ``mode``, ``key`` (the original key's
    name), ``key_sharps`` (of the original), ``transposition`` (semitones
    applied), ``pickup_padding`` (leading steps of silence), ``realigned_bars``
    (bars that needed silence before them to start on a bar line, see
    :func:`bar_layout`) and ``quantised_notes`` (tuplet notes moved to the grid).
    """
    check_metre_text(text)
    if any("&" in _simplify_music_line(line) for line in _music_lines(text)):
        raise MelodyError("a voice overlay (&): not monophonic", "polyphonic")
    part = _parse_abc(text)
    metre = _metre(part)
    layout = bar_layout(part, metre)
    counts: dict[str, int] = {}
    notes, end = stream_notes(part, quantise_tuplets=True, counts=counts)
    if not notes:
        raise MelodyError("the tune has no notes", "empty")
    pitches = [p for p, _, _ in notes]
    sharps = _key_sharps(part)
    key, mode_source = tune_key(text, sharps, notes[-1][0])
    shift = transposition_to_c(sharps, min(pitches), max(pitches), key.tonic_pitch_class)
    bar = metre.steps_per_bar
    num_steps = whole_bars(layout.end(end), bar)
    if len(layout.inserts) > MAX_REALIGNED_FRACTION * num_steps / bar:
        raise MelodyError(
            f"{len(layout.inserts)} bars off the bar lines: the bars do not follow {metre.name}",
            "metre",
        )
    if num_steps < MIN_STEPS:
        raise MelodyError(
            f"{num_steps} steps after encoding, fewer than {MIN_STEPS}",
            "too-short",
        )
    metadata = {
        "title": _title(text),
        "collection": collection,
        "source": source,
        "metre": metre.name,
        "mode": key.mode,
        "key": key.name,
        "mode_source": mode_source,
        "key_sharps": sharps,
        "transposition": shift,
        "pickup_padding": layout.pickup_padding,
        "realigned_bars": len(layout.inserts),
        "quantised_notes": counts.get("quantised_notes", 0),
    }
    placed = []
    for pitch, start, length in notes:
        onset = layout.start(start)
        placed.append(
            (pitch + shift, onset / STEPS_PER_QUARTER,
             (layout.end(start + length) - onset) / STEPS_PER_QUARTER)
        )
    return Melody.from_notes(placed, num_steps, metadata, metre, Key("C", key.mode))


# ------------------------------------------------------- the collections
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
