"""Reading ABC notation: one single-voice tune into notes on the sixteenth grid.

:func:`read_abc` reads what :func:`~rlcomposer.music.abc_notation.write_abc`
writes and the common hand-written subset of ABC 2.1 into an
:class:`AbcTune` (notes in steps, metre, key, pick-up), or raises
:class:`~rlcomposer.music.tokens.MelodyError` with one line saying what and where:

* header fields: ``X T M L K`` and the informational ones (``C O R S Z N H B D F G A I Q P
  W w r s``, ignored); any other letter is refused, as are ``U:`` and ``m:`` (they change
  what the music letters mean), a metre other than rlcomposer's (``M:`` 2/4 ... 4/2, ``C``,
  ``C|``), a metre change, a key change, and a key that does not exist (``K:H``,
  ``K:G#maj``, ``K:Cfoo``; a bare tonic is major, ``K:none`` is refused: no tonic);
* notes: ``^ ^^ _ __ =`` accidentals (they last to the end of the bar, for that letter in
  that octave), octave marks ``'`` and ``,``, lengths ``A2 A/2 A/ A// A3/2``, broken
  rhythm ``>``/``<`` (and ``>>``), ties ``-``, rests ``z``/``x`` and whole-bar rests
  ``Z``/``Z4``; inline ``[L:...]`` changes the unit;
* triplets and other tuplets ``(3abc``, ``(p:q:r`` are quantised as the corpus does: each
  note starts and ends at the nearest sixteenth, the group keeps its span (counted in
  ``dropped["quantised notes"]``); any other note off the sixteenth grid is refused;
* dropped, with a count in :attr:`AbcTune.dropped`: chord symbols and annotations
  (``"Am"``), grace notes (``{g}``), decorations (``!trill!``, ``+fermata+``, ``~ . H L M O
  P S T u v``); a chord ``[CEG]`` keeps its top note (the tune's melody) and is counted;
* repeats and endings (``|: :| [1 [2``) are read as written, once (counted in
  ``dropped["repeat marks"]``); slurs are ignored;
* bar arithmetic must add up: after a pick-up (a short first bar), every bar is a full bar
  of the metre, except two short bars that make one together (a section's last bar and
  the next section's pick-up) and a short last bar; otherwise the error names the bar;
* a second voice (``V:`` naming another voice, ``&``) or a second tune (``X:``) is refused:
  a melody is one voice.

Limits: the text within ``MAX_MELODY_FILE_BYTES`` and the tune within ``MAX_MELODY_STEPS``
(checked while reading, before anything is allocated for it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from rlcomposer.music.abc_notation import LETTER_PITCH_CLASSES, key_signature
from rlcomposer.music.keys import Key, KeyNameError, parse_mode
from rlcomposer.music.limits import MAX_MELODY_STEPS, check_size
from rlcomposer.music.metre import Metre, MetreError, parse_metre
from rlcomposer.music.tokens import STEPS_PER_QUARTER, MelodyError


@dataclass(frozen=True)
class AbcTune:
    """One tune read from ABC, on the sixteenth grid."""

    notes: tuple[tuple[int, int, int], ...]
    """``(midi_pitch, start_step, length_steps)`` of each sounding note, tied notes merged."""
    num_steps: int
    """Length in steps, pick-up included."""
    metre: Metre
    key: Key
    pickup_steps: int
    """Steps before the first downbeat (0: the tune starts on a downbeat)."""
    title: str = ""
    dropped: dict[str, int] = field(default_factory=dict)
    """What was read but not kept (or moved to the grid), by kind: chord symbols, grace notes,
    decorations, chords (their top note is kept), repeat marks, quantised notes."""


_STEPS_PER_WHOLE = 4 * STEPS_PER_QUARTER
_IGNORED_FIELDS = set("COSZNHBDFGARIQPWwrs")
_FIELD = re.compile(r"^([A-Za-z+]):(.*)$")
_KEY_TEXT = re.compile(r"^([A-Ga-g])([#b]?)\s*([A-Za-z]*)$")
_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([',]*)(\d*)((?:/+\d*)?)")
_REST = re.compile(r"([zxZX])(\d*)((?:/+\d*)?)")
_LENGTH = re.compile(r"(\d*)((?:/+\d*)?)")
_BAR = re.compile(r":*\|[\]|:]*\d*|:*\[\||::+|\[\d+|:+")
_TUPLET = re.compile(r"\((\d)(?::(\d?))?(?::(\d?))?")
_DECORATION_LETTERS = set("~.HLMOPSTuv")
_MODE_NAMES = {"maj": "major", "ion": "major", "min": "minor", "m": "minor", "aeo": "minor",
               "dor": "dorian", "mix": "mixolydian", "phr": "phrygian", "lyd": "lydian", "loc": "locrian"}


def _error(message: str, line: int | None = None, reason: str = "malformed") -> MelodyError:
    where = f"ABC line {line}: " if line is not None else "ABC: "
    return MelodyError(where + message, reason)


def parse_key_field(value: str, line: int | None = None) -> Key:
    """The key of a ``K:`` value (``D``, ``Ador``, ``E minor``, ``Bbmix``; clef=... ignored)."""
    text = " ".join(t for t in value.split("%", 1)[0].split() if "=" not in t)
    match = _KEY_TEXT.match(text)
    if match is None:
        raise _error(f"K:{value.strip()} is not a key (a tonic A-G, # or b, and a mode such as "
                     "maj, min, dor, mix)", line, "mode")
    tonic = match.group(1).upper() + match.group(2)
    word = match.group(3).lower()
    mode = "major" if not word else _MODE_NAMES.get(word[:3] if word != "m" else "m")
    if mode is None:
        try:
            mode = parse_mode(word)
        except KeyNameError:
            raise _error(f"K:{value.strip()}: unknown mode '{match.group(3)}' (choose maj, min, dor, "
                         "mix, phr, lyd, loc)", line, "mode") from None
    try:
        return Key(tonic, mode)
    except KeyNameError as error:
        raise _error(f"K:{value.strip()}: {error}", line, "mode") from None


def _unit(value: str, line: int) -> Fraction:
    text = value.split("%", 1)[0].strip()
    try:
        unit = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise _error(f"L:{text} is not a note length such as 1/8", line) from None
    if unit <= 0 or unit > 1 or unit.denominator > 64:
        raise _error(f"L:{text} is not a note length from 1/64 to 1", line)
    return unit


def _multiplier(digits: str, slashes: str, line: int) -> Fraction:
    """The length written after a note: ``2``, ``/2``, ``/``, ``//``, ``3/2``."""
    numerator = int(digits) if digits else 1
    if numerator > MAX_MELODY_STEPS or numerator == 0:
        raise _error(f"a note length of {digits} is out of range", line, "too-long")
    value = Fraction(numerator)
    if slashes:
        count = len(slashes) - len(slashes.lstrip("/"))
        rest = slashes.lstrip("/")
        denominator = int(rest) if rest else 2 ** count
        if denominator == 0 or denominator > 64:
            raise _error(f"a note length of {digits}{slashes} is out of range", line)
        value /= denominator
    return value


@dataclass
class _Event:
    pitch: int | None  # None: a rest
    length: Fraction  # in whole notes
    line: int
    tie: bool = False
    tuplet: bool = False
    letter_octave: tuple[str, int] | None = None
    explicit: bool = False


@dataclass
class _Reader:
    metre: Metre | None = None
    key: Key | None = None
    unit: Fraction | None = None
    title: str = ""
    dropped: dict[str, int] = field(default_factory=dict)
    items: list = field(default_factory=list)  # _Event, or ("bar", line)
    voices: set = field(default_factory=set)
    total: Fraction = Fraction(0)

    def count(self, kind: str, number: int = 1) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + number


def _read_field(reader: _Reader, letter: str, value: str, line: int, in_body: bool) -> None:
    value = value.strip()
    if letter == "X":
        if reader.key is not None or in_body:
            raise _error("a second tune (X:): give one tune", line)
    elif letter == "T":
        reader.title = reader.title or value
    elif letter == "M":
        text = "".join(value.split("%", 1)[0].split())
        try:
            metre = parse_metre(text)
        except MetreError as error:
            raise _error(f"M:{text}: {error}", line, "metre") from None
        if reader.metre is not None and metre != reader.metre:
            raise _error(f"the metre changes from {reader.metre.name} to {metre.name}: a melody keeps "
                         "one metre", line, "metre")
        reader.metre = metre
    elif letter == "L":
        reader.unit = _unit(value, line)
    elif letter == "K":
        key = parse_key_field(value, line)
        if in_body and reader.key is not None and key != reader.key:
            raise _error(f"the key changes from {reader.key.name} to {key.name}: a melody keeps one key",
                         line, "mode")
        reader.key = key
    elif letter == "V":
        name = value.split()[0] if value.split() else ""
        reader.voices.add(name)
        if len(reader.voices) > 1:
            raise _error(f"a second voice (V:{name}): not a single melody", line, "polyphonic")
    elif letter in ("U", "m"):
        raise _error(f"{letter}: fields (user symbols, macros) are not supported", line)
    elif letter not in _IGNORED_FIELDS:
        raise _error(f"unknown header field '{letter}:'", line)


def _take_note(match: re.Match, reader: _Reader, line: int, signature: dict[str, int],
               bar_accidentals: dict[tuple[str, int], int]) -> _Event:
    accidental, letter, octave_marks, digits, slashes = match.groups()
    octave = 5 if letter.islower() else 4
    octave += octave_marks.count("'") - octave_marks.count(",")
    letter = letter.upper()
    if accidental:
        alter = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}[accidental]
        bar_accidentals[(letter, octave)] = alter
    else:
        alter = bar_accidentals.get((letter, octave), signature[letter])
    pitch = 12 * (octave + 1) + LETTER_PITCH_CLASSES[letter] + alter
    return _Event(pitch, reader.unit * _multiplier(digits, slashes, line), line,
                  letter_octave=(letter, octave), explicit=bool(accidental))


def _read_music(reader: _Reader, text: str, line: int, bar_accidentals: dict) -> None:
    """Tokens of one music line into ``reader.items``."""
    assert reader.key is not None and reader.unit is not None
    signature = key_signature(reader.key)
    position = 0
    broken: int = 0  # pending broken rhythm: +n (>) or -n (<) for the next note
    tuplet_left = 0
    tuplet_ratio = Fraction(1)
    while position < len(text):
        char = text[position]
        if char in " \t`\\y":
            position += 1
            continue
        if char == "%":
            break
        if char == '"':
            end = text.find('"', position + 1)
            if end < 0:
                raise _error("a quoted chord symbol or annotation is not closed", line)
            reader.count("chord symbols")
            position = end + 1
            continue
        if char in "!+":
            end = text.find(char, position + 1)
            if end < 0:
                raise _error(f"a decoration {char}...{char} is not closed", line)
            reader.count("decorations")
            position = end + 1
            continue
        if char in _DECORATION_LETTERS:
            reader.count("decorations")
            position += 1
            continue
        if char == "{":
            end = text.find("}", position + 1)
            if end < 0:
                raise _error("a grace-note group {...} is not closed", line)
            reader.count("grace notes", max(1, len(re.findall(r"[A-Ga-g]", text[position:end]))))
            position = end + 1
            continue
        if char == "(":
            tuplet = _TUPLET.match(text, position)
            if tuplet:
                p = int(tuplet.group(1))
                if p < 2:
                    raise _error(f"a tuplet ({p} is not one", line)
                compound = reader.metre is not None and reader.metre.is_compound
                default_q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2)
                q = int(tuplet.group(2)) if tuplet.group(2) else default_q
                r = int(tuplet.group(3)) if tuplet.group(3) else p
                tuplet_ratio, tuplet_left = Fraction(q, p), r
                position = tuplet.end()
            else:
                position += 1  # a slur
            continue
        if char == ")":
            position += 1
            continue
        if char == "&":
            raise _error("a voice overlay (&): not a single melody", line, "polyphonic")
        if char in "<>":
            run = len(text[position:]) - len(text[position:].lstrip(char))
            if not reader.items or not isinstance(reader.items[-1], _Event) or run > 3:
                raise _error(f"broken rhythm '{char * run}' does not follow a note", line)
            previous = reader.items[-1]
            shift = Fraction(1, 2 ** run)
            factor = 2 - shift if char == ">" else shift
            reader.total += previous.length * (factor - 1)
            previous.length *= factor
            broken = run if char == ">" else -run
            position += run
            continue
        if char == "[":
            inline = re.match(r"\[([A-Za-z]):([^\]]*)\]", text[position:])
            if inline:
                _read_field(reader, inline.group(1), inline.group(2), line, in_body=True)
                signature = key_signature(reader.key)
                position += inline.end()
                continue
            bar = _BAR.match(text, position)
            if bar:
                _bar_line(reader, bar.group(0), line, bar_accidentals)
                position = bar.end()
                continue
            end = text.find("]", position)
            if end < 0:
                raise _error("a chord [...] is not closed", line)
            inner = text[position + 1:end]
            chord = [m for m in _NOTE.finditer(inner)]
            if not chord:
                raise _error(f"a chord [{inner}] holds no note", line)
            events = [_take_note(m, reader, line, signature, bar_accidentals) for m in chord]
            top = max(events, key=lambda e: e.pitch)
            top.length = events[0].length
            length = _LENGTH.match(text, end + 1)
            top.length *= _multiplier(length.group(1), length.group(2), line)
            if len(events) > 1:
                reader.count("chords")
            position = length.end()
            event = top
        elif char in "|:":
            bar = _BAR.match(text, position)
            _bar_line(reader, bar.group(0), line, bar_accidentals)
            position = bar.end()
            continue
        elif char in "zxZX":
            match = _REST.match(text, position)
            length = _multiplier(match.group(2), match.group(3), line)
            if char in "ZX":
                if match.group(3):
                    raise _error(f"a whole-bar rest {match.group(0)} cannot be divided", line)
                whole_bar = Fraction(reader.metre.steps_per_bar, _STEPS_PER_WHOLE)
                for number in range(int(length)):  # Z4: four bars of rest
                    if number:
                        _bar_line(reader, "|", line, bar_accidentals)
                    _append(reader, _Event(None, whole_bar, line))
                position = match.end()
                continue
            event = _Event(None, reader.unit * length, line)
            position = match.end()
        elif char in "^_=" or char.upper() in LETTER_PITCH_CLASSES:
            match = _NOTE.match(text, position)
            if match is None:
                raise _error(f"an accidental '{char}' without a note", line)
            event = _take_note(match, reader, line, signature, bar_accidentals)
            position = match.end()
        elif char == "-":
            if not reader.items or not isinstance(reader.items[-1], _Event) or reader.items[-1].pitch is None:
                raise _error("a tie '-' that follows no note", line)
            reader.items[-1].tie = True
            position += 1
            continue
        else:
            raise _error(f"unexpected '{char}' in the music", line)
        if broken:
            shift = Fraction(1, 2 ** abs(broken))
            event.length *= shift if broken > 0 else 2 - shift
            broken = 0
        if tuplet_left:
            event.length *= tuplet_ratio
            event.tuplet = True
            tuplet_left -= 1
        _append(reader, event)
    if broken:
        raise _error("broken rhythm at the end of a line has no note after it", line)


def _append(reader: _Reader, event: _Event) -> None:
    reader.total += event.length
    if reader.total * _STEPS_PER_WHOLE > MAX_MELODY_STEPS:
        raise _error(f"the tune is longer than the limit of {MAX_MELODY_STEPS:,} sixteenth steps",
                     event.line, "too-long")
    previous = reader.items[-1] if reader.items else None
    if (isinstance(previous, _Event) and previous.tie and event.pitch is not None and not event.explicit
            and previous.letter_octave == event.letter_octave):
        event.pitch = previous.pitch  # a tied note keeps its accidental over the bar line
    reader.items.append(event)


def _bar_line(reader: _Reader, text: str, line: int, bar_accidentals: dict) -> None:
    bar_accidentals.clear()
    if ":" in text or re.search(r"\d", text):
        reader.count("repeat marks")
    reader.items.append(("bar", line))


def _layout(reader: _Reader) -> tuple[list[tuple[int, int, int]], int, int]:
    """Notes on the grid, the length and the pick-up; checks the bar arithmetic."""
    assert reader.metre is not None
    bar_steps = reader.metre.steps_per_bar
    position = Fraction(0)
    placed: list[list] = []  # [pitch, start, end, tuplet, line]
    bars: list[tuple[Fraction, int]] = []  # (length in steps, line where it ends)
    bar_start = Fraction(0)
    last_line = 1
    for item in reader.items:
        if isinstance(item, tuple):
            if position > bar_start:
                bars.append((position - bar_start, item[1]))
            bar_start = position
            continue
        steps = item.length * _STEPS_PER_WHOLE
        last_line = item.line
        if item.pitch is not None:
            placed.append([item.pitch, position, position + steps, item.tuplet, item.line, item.tie])
        position += steps
    if position > bar_start:
        bars.append((position - bar_start, last_line))
    if not placed:
        raise _error("the tune has no notes", None, "empty")
    # bar arithmetic (exact, before any quantising)
    pickup = Fraction(0)
    short: tuple[int, Fraction, int] | None = None  # a short bar waiting for its complement

    def wrong(number: int, length: Fraction, line: int, why: str) -> MelodyError:
        name = f"bar {number + (0 if pickup else 1)}"
        return _error(f"{name} lasts {_steps_text(length)} sixteenths, but a bar of {reader.metre.name} is "
                      f"{bar_steps}{why}", line, "metre")

    for number, (length, line) in enumerate(bars):
        if number == 0 and length < bar_steps:
            pickup = length
            continue
        if short is not None:
            if short[1] + length != bar_steps:
                raise wrong(*short, " (and the bar after it does not make it up to one)")
            short = None
        elif length > bar_steps:
            raise wrong(number, length, line, "")
        elif length < bar_steps and number < len(bars) - 1:
            short = (number, length, line)
    if pickup.denominator != 1:
        raise _error(f"the pick-up lasts {_steps_text(pickup)} sixteenths: off the sixteenth grid", None,
                     "off-grid")
    # notes on the grid: tuplet notes quantised, others must be on it
    notes: list[tuple[int, int, int]] = []
    tied = False  # the note before was tied to the next
    for pitch, start, end, tuplet, line, tie in placed:
        if tuplet:
            first, last = round(start), round(end)
            if first != start:
                reader.count("quantised notes")
        else:
            if start.denominator != 1 or end.denominator != 1:
                raise _error("a note off the sixteenth-note grid (shorter than a sixteenth, or after "
                             "one)", line, "off-grid")
            first, last = int(start), int(end)
        if last <= first:
            raise _error("a tuplet too fast for the sixteenth-note grid", line, "off-grid")
        if notes and notes[-1][1] + notes[-1][2] > first:
            raise _error("notes overlap", line, "off-grid")
        if tied and notes[-1][0] == pitch and notes[-1][1] + notes[-1][2] == first:
            notes[-1] = (pitch, notes[-1][1], last - notes[-1][1])
        else:
            notes.append((pitch, first, last - first))
        tied = tie
    num_steps = round(position)
    return notes, num_steps, int(pickup)


def _steps_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):.3g}"


def read_abc(text: str | bytes) -> AbcTune:
    """One single-voice tune of ABC text (see the module docstring for what is read)."""
    if isinstance(text, bytes):
        check_size(text, "the ABC file")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise _error("not a text file (not UTF-8)") from None
    check_size(text.encode("utf-8", errors="replace"), "the ABC file")
    reader = _Reader()
    part = "header"  # then "body" (after K:), then "ended" (a blank line after the music)
    seen_x = False
    bar_accidentals: dict = {}
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            if part == "body" and not stripped and any(isinstance(i, _Event) for i in reader.items):
                part = "ended"
            continue
        field_match = _FIELD.match(stripped)
        if field_match:
            letter, value = field_match.groups()
            if letter == "X":
                if seen_x:
                    raise _error("a second tune (X:): give one tune", number)
                seen_x = True
            if part == "ended":
                continue  # free text after the tune
            _read_field(reader, letter, value, number, in_body=part == "body")
            if letter == "K":
                part = "body"
            continue
        if part == "header":
            raise _error("music before the K: field (the header ends with K:)", number)
        if part == "ended":
            raise _error("music after the blank line that ends the tune", number)
        if reader.metre is None:
            raise _error("no metre (M:) before the music", number, "metre")
        if reader.unit is None:
            reader.unit = Fraction(1, 16) if reader.metre.numerator / reader.metre.denominator < 0.75 \
                else Fraction(1, 8)  # the ABC standard's default unit
        _read_music(reader, line, number, bar_accidentals)
    if reader.key is None:
        raise _error("no K: field (the key, which ends the header)", None, "mode")
    notes, num_steps, pickup = _layout(reader)
    return AbcTune(tuple(notes), num_steps, reader.metre, reader.key, pickup, reader.title, reader.dropped)


__all__ = ["AbcTune", "parse_key_field", "read_abc"]
