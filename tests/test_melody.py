"""Melody: encoding, notes, and lossless round trips through every format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlcomposer.music.melody import (
    HOLD,
    MAX_PITCH,
    MIN_PITCH,
    REST,
    VOCAB_SIZE,
    Melody,
    MelodyError,
    pitch_token,
)

tokens_strategy = st.lists(st.integers(0, VOCAB_SIZE - 1), min_size=1, max_size=80)


@st.composite
def canonical_melodies(draw, max_steps: int = 64):
    return Melody(draw(tokens_strategy)).canonical()


def test_notes_are_quarter_note_tuples_from_step_zero():
    melody = Melody([REST, HOLD, pitch_token(60), HOLD, HOLD, HOLD, pitch_token(62), REST])
    assert melody.notes() == [(60, 0.5, 1.0), (62, 1.5, 0.25)]
    assert melody.duration_beats == 2.0


def test_hold_at_step_zero_continues_silence():
    melody = Melody([HOLD, HOLD, pitch_token(72), HOLD])
    assert melody.notes() == [(72, 0.5, 0.5)]
    assert melody.canonical().tokens.tolist() == [REST, HOLD, pitch_token(72), HOLD]


def test_repeated_pitch_is_two_notes():
    melody = Melody([pitch_token(60), HOLD, pitch_token(60), HOLD])
    assert melody.notes() == [(60, 0.0, 0.5), (60, 0.5, 0.5)]


def test_pitch_range_covers_c3_to_c6():
    assert MIN_PITCH <= 48 and MAX_PITCH >= 84
    for bad in (MIN_PITCH - 1, MAX_PITCH + 1):
        with pytest.raises(MelodyError, match="outside the melody range"):
            Melody.from_notes([(bad, 0, 1)])


def test_bad_tokens_and_notes_are_rejected():
    with pytest.raises(MelodyError):
        Melody([VOCAB_SIZE])
    with pytest.raises(MelodyError):
        Melody([])
    with pytest.raises(MelodyError, match="off the sixteenth-note grid"):
        Melody.from_notes([(60, 0, 1 / 3)])
    with pytest.raises(MelodyError, match="monophonic"):
        Melody.from_notes([(60, 0, 1), (64, 0.5, 1)])


@given(tokens_strategy)
def test_notes_round_trip_for_any_tokens(tokens):
    melody = Melody(tokens)
    again = Melody.from_notes(melody.notes(), melody.num_steps)
    assert again.notes() == melody.notes()
    assert again == melody.canonical()


@given(canonical_melodies())
def test_canonical_tokens_round_trip_exactly(melody):
    assert Melody.from_notes(melody.notes(), melody.num_steps) == melody


@given(canonical_melodies())
def test_json_round_trip(melody):
    assert Melody.from_json(melody.to_json()) == melody


@given(canonical_melodies())
def test_midi_round_trip(melody):
    assert Melody.from_midi_bytes(melody.to_midi_bytes()) == melody


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(canonical_melodies(max_steps=40))
def test_music21_stream_round_trip(melody):
    assert Melody.from_stream(melody.to_stream()) == melody


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(canonical_melodies(max_steps=40))
def test_musicxml_round_trip(melody):
    assert Melody.from_musicxml_bytes(melody.to_musicxml_bytes()) == melody


def test_notes_across_bar_lines_survive_musicxml():
    # a note tied over the bar line and a dotted rhythm
    melody = Melody.from_notes([(67, 3.0, 2.0), (69, 5.0, 0.75), (71, 5.75, 0.25)], 32)
    assert Melody.from_musicxml_bytes(melody.to_musicxml_bytes()) == melody


def test_json_is_deterministic_and_readable():
    melody = Melody.from_notes([(60, 0, 1)], 16, {"model": "prior", "seed": 3})
    assert melody.to_json() == Melody.from_json(melody.to_json()).with_metadata().to_json()
    assert '"notes"' in melody.to_json()


def test_files_by_suffix(tmp_path):
    melody = Melody.from_notes([(60, 0, 1), (64, 1, 1), (67, 2, 2)], 16)
    for suffix in (".json", ".mid", ".musicxml"):
        path = melody.save(tmp_path / f"m{suffix}")
        assert Melody.load(path) == melody


@pytest.mark.parametrize(
    "name, content",
    [("bad.mid", b"not midi at all"), ("bad.musicxml", b"<score-partwise><oops"),
     ("bad.json", b"{\"format\": 1"), ("bad.txt", b"")],
)
def test_malformed_files_give_one_line_errors(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MelodyError) as error:
        Melody.load(path)
    assert name in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(MelodyError, match="nothing.mid"):
        Melody.load(tmp_path / "nothing.mid")


def test_polyphonic_midi_keeps_the_top_line():
    import io

    import mido

    track = mido.MidiTrack()
    for pitch in (60, 64, 67):
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=480))
    track.append(mido.Message("note_off", note=64, velocity=0, time=0))
    track.append(mido.Message("note_off", note=67, velocity=0, time=0))
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    assert Melody.from_midi_bytes(buffer.getvalue()).notes() == [(67, 0.0, 1.0)]


def test_transpose_keeps_rhythm():
    melody = Melody.from_notes([(60, 0, 1), (62, 1, 0.5)], 8)
    assert melody.transpose(12).notes() == [(72, 0.0, 1.0), (74, 1.0, 0.5)]
    with pytest.raises(MelodyError):
        melody.transpose(30)


def test_tokens_are_read_only():
    melody = Melody(np.array([pitch_token(60), HOLD]))
    with pytest.raises(ValueError):
        melody.tokens[0] = REST


def test_score_of_a_c_major_melody_has_no_stray_accidentals():
    import re

    notes = [(72, 0.0, 0.5), (64, 0.5, 0.5), (67, 1.0, 0.75), (72, 1.75, 0.25), (72, 2.0, 1.0),
             (69, 3.0, 1.0), (69, 4.0, 0.75), (72, 4.75, 0.25), (74, 5.0, 0.5), (67, 5.5, 0.5)]
    xml = Melody.from_notes(notes, 32).to_musicxml_bytes().decode()
    assert re.findall(r"<accidental>", xml) == []
    with_sharp = Melody.from_notes([(66, 0, 1), (65, 1, 1)], 16).to_musicxml_bytes().decode()
    assert re.findall(r"<accidental>(\w+)</accidental>", with_sharp) == ["sharp", "natural"]


def _pickup_melody(metre: str, pickup: int, bars: int = 2) -> Melody:
    bar = Melody(np.array([0]), metre=metre).metre.steps_per_bar
    tokens = [pitch_token(67)] + [HOLD] * (pickup - 1)
    for index in range(bars):
        tokens += [pitch_token(72 + index % 3)] + [HOLD] * (bar // 2 - 1)
        tokens += [pitch_token(71)] + [HOLD] * (bar - bar // 2 - 1)
    return Melody(np.array(tokens), metre=metre, pickup_steps=pickup)


@pytest.mark.parametrize("metre, pickup", [("4/4", 4), ("6/8", 6), ("3/4", 4), ("6/8", 2)])
def test_a_pickup_round_trips_through_midi_musicxml_and_json(metre, pickup):
    from music21 import converter, stream

    melody = _pickup_melody(metre, pickup)
    assert melody.notes()[0][1] == 0.0  # the files start with the pick-up's first note
    assert Melody.from_json(melody.to_json()) == melody
    assert Melody.from_midi_bytes(melody.to_midi_bytes()) == melody
    xml = melody.to_musicxml_bytes()
    assert Melody.from_musicxml_bytes(xml) == melody
    measures = list(converter.parseData(xml.decode(), format="musicxml").parts[0]
                    .getElementsByClass(stream.Measure))
    assert measures[0].duration.quarterLength == pickup / 4  # an incomplete first measure, no rests
    assert not measures[0].getElementsByClass("Rest")
    assert [m.duration.quarterLength for m in measures[1:]] == [melody.metre.steps_per_bar / 4] * 2
    assert b'implicit="yes"' in xml


def test_a_pickup_that_does_not_fit_the_metre_is_refused():
    for pickup in (-1, 16, 20):
        with pytest.raises(MelodyError, match="pick-up"):
            Melody(np.array([pitch_token(60)] * 40), pickup_steps=pickup)
    with pytest.raises(MelodyError, match="pick-up"):
        Melody.from_json(_pickup_melody("4/4", 4).to_json().replace('"pickup_steps": 4', '"pickup_steps": 12.5'))


def test_leading_silence_becomes_a_pickup():
    tokens = [REST] + [HOLD] * 11 + [pitch_token(67)] + [HOLD] * 3 + [pitch_token(72)] + [HOLD] * 15
    melody = Melody(np.array(tokens)).without_leading_silence()
    assert melody.pickup_steps == 4 and melody.num_steps == 20 and melody.num_bars == 1


def test_scores_are_titled_and_name_no_composer(tmp_path):
    path = _pickup_melody("4/4", 4).save(tmp_path / "morning-jig.musicxml")
    text = path.read_text()
    assert "<work-title>morning-jig</work-title>" in text
    assert 'type="composer"' not in text and "<software>rlcomposer" in text
