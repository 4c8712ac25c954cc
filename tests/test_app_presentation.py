"""What the rating page draws and plays: one clef rule, plain rests, a shared labelled pitch
axis within a pair, and playback from the first sounding note."""

from __future__ import annotations

import io
import wave

from music21 import clef, note

from rlcomposer.feedback.presentation import (
    PresentationConfig,
    clef_for,
    engraving_stream,
    piano_roll_svg,
    prepare_melody_view,
    shared_pitch_range,
)
from rlcomposer.music.melody import Melody


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
