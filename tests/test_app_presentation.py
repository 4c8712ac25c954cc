"""What the rating page draws and plays: each melody in its own metre, key signature and
pick-up, up to 8 bars a line; one clef rule, plain rests, a shared labelled pitch axis within
a pair, and playback from the first sounding note."""

from __future__ import annotations

import io
import re
import wave

import numpy as np
from music21 import clef, note, stream

from rlcomposer.feedback.presentation import (
    PresentationConfig,
    clef_for,
    drawn_melody,
    engrave_svg,
    engraving_stream,
    piano_roll_svg,
    prepare_melody_view,
    read_engraving,
    score_page_width,
    shared_pitch_range,
)
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.metre import parse_metre

G_MAJOR_PITCHES = (62, 64, 66, 67, 69, 71, 72, 74, 76, 78, 79)


def g_major_tune(metre: str = "6/8", bars: int = 8, pickup_steps: int = 0, seed: int = 0,
                 quarters: float = 0.2) -> Melody:
    """A tune in G major of ``bars`` bars after a pick-up: eighth notes, a share ``quarters`` of
    quarter notes (a different tune for each seed)."""
    rng = np.random.default_rng(seed)
    total = pickup_steps + bars * parse_metre(metre).steps_per_bar
    notes, step = [], 0
    while step < total:
        length = min(total - step, 4 if rng.random() < quarters else 2)
        notes.append((int(rng.choice(G_MAJOR_PITCHES)), step / 4, length / 4))
        step += length
    return Melody.from_notes(notes, total, metre=metre, key=Key("G", "major"), pickup_steps=pickup_steps)


def low_and_high():
    low = Melody.from_notes([(50, 1.5, 0.5), (52, 2.0, 1.0), (55, 3.0, 1.0), (53, 4.0, 2.0)], 32)
    high = Melody.from_notes([(72, 0.0, 1.0), (76, 1.0, 1.0), (79, 2.0, 2.0)], 32)
    return low, high


def test_every_melody_is_written_in_treble_and_a_low_one_in_ottava_treble():
    low, high = low_and_high()
    assert type(clef_for(high)) is clef.TrebleClef
    assert type(clef_for(low)) is clef.Treble8vbClef
    for melody in (low, high):
        clefs = list(engraving_stream(melody).recurse().getElementsByClass(clef.Clef))
        assert len(clefs) == 1 and isinstance(clefs[0], (clef.TrebleClef, clef.Treble8vbClef))


def test_rests_are_plain_values_never_double_dotted():
    # a pick-up: 3.5 beats of rest before the first note (music21 alone writes a double-dotted half)
    pickup = Melody.from_notes([(67, 3.5, 0.5), (69, 4.0, 2.0), (71, 6.0, 2.0)], 32)
    rests = list(engraving_stream(pickup).recurse().getElementsByClass(note.Rest))
    assert sum(r.quarterLength for r in rests) == 3.5
    assert all(r.duration.dots == 0 for r in rests)
    assert [r.quarterLength for r in rests][:3] == [2.0, 1.0, 0.5]


def test_the_piano_rolls_of_a_pair_share_one_labelled_pitch_axis():
    low, high = low_and_high()
    shared = shared_pitch_range([low, high])
    assert shared == (48, 81)
    rolls = [piano_roll_svg(m, PresentationConfig(pitch_range=shared)) for m in (low, high)]
    for roll in rolls:
        assert all(f">{name}<" in roll for name in ("C3", "C4", "C5", "A5"))  # every C, and the top
    own = piano_roll_svg(high)
    assert ">C4<" not in own  # alone, a roll spans its own notes only


def test_playback_starts_at_the_first_note_and_the_download_keeps_the_timing():
    melody = Melody.from_notes([(67, 2.0, 1.0), (69, 3.0, 1.0)], 32)
    view = prepare_melody_view(melody, PresentationConfig(tempo_bpm=120))

    def seconds(data: bytes) -> float:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.getnframes() / reader.getframerate()

    assert abs(seconds(view.wav) - seconds(view.playback_wav) - 1.0) < 0.01  # 2 beats at 120 bpm
    assert abs(view.playback_ms / 1000 - seconds(view.playback_wav)) < 0.002


# ------------------------------------------------------------ metre, key, pick-up
def test_a_6_8_tune_in_g_major_is_engraved_in_6_8_with_one_sharp_and_its_8_bars_on_one_line():
    score = read_engraving(engrave_svg(g_major_tune("6/8", 8)))
    assert score.time_signatures == ("6/8",)
    assert (score.key_sharps, score.key_flats) == (1, 0)
    assert (score.lines, score.bars, score.rests, score.accidentals) == (1, 8, 0, 0)  # F sharp is in the key
    for metre in ("3/4", "4/4"):  # the other metres of a mixed pool too
        score = read_engraving(engrave_svg(g_major_tune(metre, 8, seed=1)))
        assert (score.time_signatures, score.key_sharps, score.lines, score.bars) == ((metre,), 1, 1, 8)
    flats = read_engraving(engrave_svg(g_major_tune("3/4", 4).in_key(Key("F", "major"))))
    assert (flats.key_sharps, flats.key_flats) == (0, 1)
    plain = read_engraving(engrave_svg(Melody.from_notes([(60, 0, 1), (62, 1, 3)], 16)))
    assert (plain.time_signatures, plain.key_sharps, plain.key_flats) == (("4/4",), 0, 0)


def test_a_new_line_every_8_bars_with_the_pick_up_on_the_first():
    score = read_engraving(engrave_svg(g_major_tune("6/8", 16, pickup_steps=2)))
    assert (score.lines, score.bars, score.rests) == (2, 17, 0)
    measures = list(engraving_stream(g_major_tune("6/8", 16, pickup_steps=2), bars_per_line=8)
                    .parts[0].getElementsByClass(stream.Measure))
    assert [m.number for m in measures if m.getElementsByClass("SystemLayout")] == [0, 9]


def test_a_pick_up_is_an_incomplete_first_bar_not_a_bar_of_rests():
    # one eighth before the first downbeat of 6/8, then 8 whole bars
    melody = g_major_tune("6/8", 8, pickup_steps=2, quarters=0.0)
    score = read_engraving(engrave_svg(melody))
    assert (score.time_signatures, score.key_sharps, score.lines) == (("6/8",), 1, 1)
    assert (score.bars, score.rests) == (9, 0)  # the pick-up bar and 8 bars; no rest anywhere
    first, second = list(engraving_stream(melody).parts[0].getElementsByClass(stream.Measure))[:2]
    assert first.number == 0 and first.paddingLeft == 2.5 and [n.quarterLength for n in first.notesAndRests] == [0.5]
    assert second.number == 1 and sum(n.quarterLength for n in second.notesAndRests) == 3.0
    # a note of the pick-up that sounds on into bar 1 is tied over the bar line, not cut or padded with rests
    tied = Melody.from_notes([(67, 0.0, 0.5), (71, 0.5, 1.0), (74, 1.5, 1.5), (72, 3.0, 1.0), (71, 4.0, 1.0)],
                             20, metre="6/8", key=Key("G", "major"), pickup_steps=4)
    bars = list(engraving_stream(tied).parts[0].getElementsByClass(stream.Measure))
    assert [sum(n.quarterLength for n in b.notesAndRests) for b in bars] == [1.0, 3.0, 1.0]
    assert not [r for b in bars for r in b.getElementsByClass(note.Rest)]
    assert bars[0].notesAndRests[-1].tie.type == "start" and bars[1].notesAndRests[0].tie.type == "stop"
    assert read_engraving(engrave_svg(tied)).rests == 0
    # the same tokens without the pick-up: barred from the first note, so the last bar is short
    assert read_engraving(engrave_svg(melody.with_pickup(0))).bars == 9


def test_accidentals_follow_the_key_signature_also_after_a_tie_over_a_bar_line():
    for seed in range(4):  # G major tunes with ties over bar lines: no accidental anywhere
        tune = g_major_tune("6/8", 8, seed=seed, quarters=0.4)
        assert read_engraving(engrave_svg(tune)).accidentals == 0
        assert b"<accidental" not in tune.to_musicxml_bytes()
    # C sharp tied over a bar line in G major: the sharp once, then again on the next C sharp;
    # then a C natural (its sign); the same with the tie from a pick-up into bar 1
    tied = Melody.from_notes([(67, 0, 1), (73, 1, 2.5), (73, 3.5, 0.5), (72, 4, 1), (71, 5, 1)], 24,
                             metre="6/8", key=Key("G", "major"))
    from_pickup = Melody.from_notes([(67, 0, 0.5), (73, 0.5, 1.0), (73, 1.5, 0.5), (72, 2, 1), (71, 3, 1)], 16,
                                    metre="6/8", key=Key("G", "major"), pickup_steps=4)
    for melody in (tied, from_pickup):
        assert read_engraving(engrave_svg(melody)).accidentals == 3
        assert melody.to_musicxml_bytes().count(b"<accidental") == 3


def test_rests_inside_a_pick_up_are_plain_values_on_their_beat():
    # a 3/4 pick-up of a quarter: a sixteenth rest, then a dotted eighth (the rest is at beat 3 of the bar)
    melody = Melody.from_notes([(67, 0.25, 0.75), (71, 1.0, 3.0)], 16, metre="3/4", pickup_steps=4)
    first = list(engraving_stream(melody).parts[0].getElementsByClass(stream.Measure))[0]
    assert [(type(n).__name__, n.quarterLength) for n in first.notesAndRests] == [("Rest", 0.25), ("Note", 0.75)]


def test_the_page_width_follows_the_shape_never_the_notes():
    dense, sparse = g_major_tune("6/8", 8, seed=1, quarters=0.0), g_major_tune("6/8", 8, seed=2, quarters=1.0)
    assert score_page_width(dense) == score_page_width(sparse)
    widths = [re.search(r'viewBox="0 0 (\d+)', engrave_svg(m)).group(1) for m in (dense, sparse)]
    assert widths[0] == widths[1]  # one scale for both melodies of a pair
    assert score_page_width(g_major_tune("6/8", 16)) == score_page_width(dense)  # 8 bars a line
    assert score_page_width(g_major_tune("6/8", 4)) < score_page_width(dense)
    assert score_page_width(g_major_tune("6/8", 8, pickup_steps=2)) > score_page_width(dense)


def test_what_is_drawn_is_the_melody_with_its_metre_key_and_pick_up_not_its_tokens():
    jig = g_major_tune("6/8", 2)
    plain = Melody(jig.tokens)  # the same tokens, 4/4 in C
    assert drawn_melody(jig) != drawn_melody(plain) and drawn_melody(jig) != drawn_melody(jig.with_pickup(2))
    assert drawn_melody(jig.with_metadata(title="x", tag="t")) == drawn_melody(jig)  # metadata draws nothing
    assert drawn_melody(jig).metadata == {}
    drawn = [read_engraving(prepare_melody_view(m).score_svg) for m in (jig, plain)]
    assert [(d.time_signatures, d.key_sharps) for d in drawn] == [(("6/8",), 1), (("4/4",), 0)]
    # C major draws an empty key signature: the F sharps are accidentals on their notes
    tune = g_major_tune("6/8", 8, seed=1, quarters=0.0)
    assert 66 in [p for p, _, _ in tune.notes()]
    assert read_engraving(engrave_svg(Melody(tune.tokens))).key_sharps == 0


def test_the_piano_roll_bars_follow_the_metre_and_the_pick_up():
    def lines(melody):
        roll = piano_roll_svg(melody)
        return [(float(x), colour == "#999") for x, colour in
                re.findall(r'<line x1="([\d.]+)" y1="4" x2="[\d.]+" y2="[\d.]+" stroke="(#999|#e0e0e0)"', roll)]

    waltz = lines(g_major_tune("3/4", 2))  # 24 steps: a beat line every quarter, a bar line every 3
    assert len(waltz) == 7 and [strong for _, strong in waltz] == [True, False, False] * 2 + [True]
    jig = lines(g_major_tune("6/8", 2))  # beats of a dotted quarter
    assert len(jig) == 5 and [strong for _, strong in jig] == [True, False, True, False, True]
    # after a pick-up of an eighth (2 of 26 steps) the lines are at steps 2, 8, 14, 20, 26; bars at 2, 14, 26
    pickup = lines(g_major_tune("6/8", 2, pickup_steps=2))
    x_of_step = [34 + (640 - 34 - 4) * step / 26 for step in (2, 8, 14, 20, 26)]
    assert [round(x, 1) for x, _ in pickup] == [round(x, 1) for x in x_of_step]
    assert [strong for _, strong in pickup] == [True, False, True, False, True]
