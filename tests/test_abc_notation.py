"""ABC in and out: generated melodies round-trip through ABC (read by rlcomposer and by music21),
hand-written ABC reads as a musician means it, and bad ABC is refused in one line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rlcomposer.cli.main import main
from rlcomposer.music.abc_reading import read_abc
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody, MelodyError
from rlcomposer.music.notation import stream_metre_and_key, stream_notes, stream_pickup_steps
from rlcomposer.prior.generation import GenerationConfig, sample_melodies
from rlcomposer.prior.registry import resolve_model

SHAPES = [("4/4", 1.0, "G", "major"), ("3/4", 1.0, "Bb", "minor"), ("6/8", 1.5, "D", "dorian"),
          ("6/8", 0.5, "E", "mixolydian")]


@pytest.fixture(scope="module")
def shipped():
    return resolve_model("prior")


def sampled(model, metre, pickup, key, mode, n=12):
    return sample_melodies(model, GenerationConfig(num_melodies=n, num_bars=4, metre=metre, pickup_beats=pickup,
                                                   key=key, mode=mode, seed=3))


@pytest.mark.parametrize(("metre", "pickup", "key", "mode"), SHAPES)
def test_generated_melodies_round_trip_through_abc(shipped, metre, pickup, key, mode):
    for melody in sampled(shipped, metre, pickup, key, mode):
        text = melody.to_abc()
        assert f"M:{metre}" in text and "L:1/8" in text
        back = Melody.from_abc(text)
        assert back.notes() == melody.notes()
        assert (back.metre, back.key, back.pickup_steps, back.num_steps) == \
            (melody.metre, melody.key, melody.pickup_steps, melody.num_steps)


@pytest.mark.parametrize(("metre", "pickup", "key", "mode"), SHAPES[:3])
def test_music21_reads_the_written_abc_as_the_same_notes(shipped, metre, pickup, key, mode):
    from music21 import converter

    for melody in sampled(shipped, metre, pickup, key, mode, n=4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = converter.parse(melody.to_abc(), format="abc")
        part = score.parts[0]
        notes, _ = stream_notes(part)
        assert notes == [(p, round(o * 4), round(d * 4)) for p, o, d in melody.notes()]
        assert stream_metre_and_key(part) == (melody.metre, melody.key)
        assert stream_pickup_steps(part, melody.metre) == melody.pickup_steps


def test_a_pick_up_is_a_short_first_bar_and_ties_cross_bar_lines():
    melody = Melody.from_notes([(67, 0, 1), (72, 1, 6), (74, 7, 1)], num_steps=36, metre="4/4",
                               key=Key("G", "major"), pickup_steps=4)
    text = melody.to_abc(title="Tied")
    assert "T:Tied" in text and "K:Gmaj" in text
    body = text.split("K:Gmaj\n", 1)[1]
    assert body == "G2 | c8- | c4 d2 z2 |]\n"  # pick-up, then a note tied over the bar line
    assert Melody.from_abc(text).notes() == melody.notes()


def test_accidentals_are_written_against_the_key_and_last_to_the_bar_line():
    # F major: B is flat; a B natural, then another B natural in the bar, then B flat again
    melody = Melody.from_notes([(71, 0, 1), (71, 1, 1), (70, 2, 1), (70, 4, 1)], num_steps=32,
                               key=Key("F", "major"))
    text = melody.to_abc()
    assert text.endswith("K:Fmaj\n=B2 =B2 _B2 z2 | B2 z6 |]\n")
    assert Melody.from_abc(text).notes() == melody.notes()


HAND_WRITTEN = """\
X:7
T:The Opening
C:A. Fiddler
R:jig
M:6/8
L:1/8
Q:3/8=120
K:Edor
"Em"B | ~E2F G2A | B>cd e2f/g/ | {a}g2e [Bd]2^c | d3- dz :|
"""


def test_hand_written_abc_reads_as_meant_and_counts_what_is_dropped():
    melody = Melody.from_abc(HAND_WRITTEN)
    assert (melody.metre.name, melody.key, melody.pickup_steps) == ("6/8", Key("E", "dorian"), 2)
    assert melody.metadata["title"] == "The Opening"
    pitches = [p for p, _, _ in melody.notes()]
    # E dorian has F# and C#: F is sharp; the written ^c is C#, the tie joins d3-d
    assert pitches == [71, 64, 66, 67, 69, 71, 73, 74, 76, 78, 79, 79, 76, 74, 73, 74]
    durations = [d for _, _, d in melody.notes()]
    assert durations[5:7] == [0.75, 0.25]  # B>c: dotted rhythm
    assert durations[-1] == 2.0  # d3-d: tied into one note
    assert melody.metadata["abc_dropped"] == {"chord symbols": 1, "decorations": 1, "grace notes": 1,
                                              "chords": 1, "repeat marks": 1}


def test_triplets_are_quantised_to_the_grid_and_counted():
    tune = read_abc("X:1\nM:2/4\nL:1/8\nK:C\n(3cde f2 | g4 |]\n")
    assert [s for _, s, _ in tune.notes][:4] == [0, 1, 3, 4]
    assert tune.dropped["quantised notes"] == 2  # d and e start a third of a step off the grid


@pytest.mark.parametrize(("text", "message"), [
    ("X:1\nY:what\nM:4/4\nK:C\nCDEF|\n", "unknown header field 'Y:'"),
    ("X:1\nM:4/4\nL:1/4\nK:C\nCDEF | GAB | c4 |]\n", "bar 2 lasts 12 sixteenths, but a bar of 4/4 is 16"),
    ("X:1\nM:4/4\nK:C\nCDEF GABc d |]\n", "bar 1 lasts 18 sixteenths"),
    ("X:1\nM:4/4\nK:H\nCDEF|\n", "K:H is not a key"),
    ("X:1\nM:4/4\nK:G#maj\nCDEF|\n", "G# major needs 8 sharps"),
    ("X:1\nM:4/4\nK:Cfoo\nCDEF|\n", "unknown mode 'foo'"),
    ("X:1\nM:5/4\nK:C\nCDEF|\n", "unknown metre '5/4'"),
    ("X:1\nM:4/4\nV:1\nV:2\nK:C\nCDEF|\n", "a second voice"),
    ("X:1\nM:4/4\nK:C\nCDEF & GABc|\n", "not a single melody"),
    ("X:1\nM:4/4\nK:C\nCDEF|\nX:2\nM:4/4\nK:C\nCDEF|\n", "a second tune"),
    ("X:1\nM:4/4\nK:C\nCDEF|[M:3/4]CDE|\n", "the metre changes"),
    ("X:1\nM:4/4\nK:C\nC/4D/4 E3 F4 G/|\n", "off the sixteenth-note grid"),
    ("X:1\nM:4/4\nK:C\nz4|\n", "no notes"),
    ("X:1\nM:4/4\nL:1/8\nK:C\nC99999|\n", "out of range"),
])
def test_malformed_abc_is_refused_in_one_line(text, message):
    with pytest.raises(MelodyError) as caught:
        Melody.from_abc(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_abc_file_past_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    from rlcomposer.music import limits

    monkeypatch.setattr(limits, "MAX_MELODY_FILE_BYTES", 100)
    path = tmp_path / "big.abc"
    path.write_text("X:1\nM:4/4\nK:C\n" + "CDEF|" * 40 + "\n")
    with pytest.raises(MelodyError, match="larger than the limit"):
        Melody.load(path)


def test_generate_writes_abc_files(tmp_path):
    out = tmp_path / "abc"
    assert main(["generate", "--model", "prior", "--n", "3", "--bars", "2", "--pickup", "1",
                 "--format", "abc,json", "--out", str(out), "--quiet"]) == 0
    for index in range(3):
        written = Melody.load(out / f"melody-00{index}.json")
        back = Melody.load(out / f"melody-00{index}.abc")
        assert back.notes() == written.notes() and back.pickup_steps == 4
    assert np.array_equal(back.canonical().tokens, written.canonical().tokens)


def test_music21_reads_a_tied_note_with_an_accidental_as_one_note():
    from music21 import converter

    melody = Melody.from_notes([(75, 0, 2.5), (76, 2.5, 0.5), (72, 3, 3)], num_steps=24, metre="6/8")
    text = melody.to_abc()
    assert "^d4- ^d" in text  # the accidental on every tied piece, as music21 reads ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        notes, _ = stream_notes(converter.parse(text, format="abc").parts[0])
    assert notes == [(75, 0, 10), (76, 10, 2), (72, 12, 12)]
    assert Melody.from_abc(text).notes() == melody.notes()


def test_any_abc_body_ends_in_a_melody_or_one_line_melody_error():
    import random

    alphabet = [*"ABCDEFGabcdefgzxZ^_=,'/23458|:[]{}()<>-\"!+~.& HTuvKLM%y\\", "\n", "[K:D]", "[M:3/4]",
                "[L:1/16]", "(3", "|]", "::", "[1", "\nV:2\n", "\nK:Am\n", "\n\n", "\nX:2\n"]
    chooser = random.Random(7)
    outcomes = {"melody": 0, "refused": 0}
    for _ in range(2000):
        body = "".join(chooser.choice(alphabet) for _ in range(chooser.randint(1, 40)))
        text = f"X:1\nM:{chooser.choice(['4/4', '6/8', '3/4'])}\nL:1/8\nK:G\n{body}\n"
        try:
            Melody.from_abc(text)
            outcomes["melody"] += 1
        except MelodyError as error:
            assert "\n" not in str(error), text
            outcomes["refused"] += 1
    assert outcomes["melody"] > 20 and outcomes["refused"] > 1000
