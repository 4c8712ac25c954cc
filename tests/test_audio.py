"""The built-in synthesiser: what a listener (or a WAV reader) would notice."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from rlcomposer.music.audio import (
    DEFAULT_SAMPLE_RATE,
    SynthConfig,
    audio_to_wav_bytes,
    render_audio,
    render_wav_bytes,
    write_wav,
)
from rlcomposer.music.melody import Melody

SR = DEFAULT_SAMPLE_RATE
RELEASE = round(SynthConfig().release_s * SR)  # samples a note rings on after it ends


def seconds_to_samples(beats: float, tempo_bpm: float = 120.0, sample_rate: int = SR) -> int:
    return round(beats * 60.0 / tempo_bpm * sample_rate)


def read_wav(data: bytes) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(params.nframes)
    return params, np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32767.0


def spectrum(samples: np.ndarray, sample_rate: int = SR) -> tuple[np.ndarray, np.ndarray]:
    window = np.hanning(samples.size)
    return np.fft.rfftfreq(samples.size, 1.0 / sample_rate), np.abs(np.fft.rfft(samples * window))


def level_near(freqs: np.ndarray, mags: np.ndarray, hz: float, width: float = 5.0) -> float:
    return float(mags[(freqs > hz - width) & (freqs < hz + width)].max())


def high_frequency_residue(samples: np.ndarray, cutoff_hz: float = 3000.0) -> float:
    """Peak of everything above ``cutoff_hz``, relative to the signal's peak.

    The melodies below are low (C3-G3: even their 8th harmonic is under 1.6 kHz),
    so energy above 3 kHz can only come from clicks, which are broadband.
    """
    freqs = np.fft.rfftfreq(samples.size, 1.0 / SR)
    spec = np.fft.rfft(samples)
    spec[freqs < cutoff_hz] = 0
    return float(np.abs(np.fft.irfft(spec, samples.size)).max() / np.abs(samples).max())


def alternating(pitches: tuple[int, int], num_notes: int = 16, beats: float = 0.25) -> Melody:
    notes = [(pitches[i % 2], i * beats, beats) for i in range(num_notes)]
    return Melody.from_notes(notes, num_steps=round(num_notes * beats * 4))


A4_HELD = Melody.from_notes([(69, 0, 4)], num_steps=16)
TUNE = Melody.from_notes(
    [(60, 0, 1), (62, 1, 0.5), (64, 1.5, 0.5), (65, 2, 1), (67, 3, 1), (72, 4, 2), (67, 6, 2)],
    num_steps=32,
)


# ----------------------------------------------------------------------- the file
def test_wav_reads_back_with_right_format_and_length():
    params, samples = read_wav(render_wav_bytes(TUNE))
    assert params.nchannels == 1
    assert params.sampwidth == 2
    assert params.framerate == SR
    # 8 quarter notes at 120 bpm = 4 s, plus the last note's release tail.
    assert params.nframes == seconds_to_samples(TUNE.duration_beats) + RELEASE
    assert samples.size == params.nframes
    assert np.abs(samples).max() > 0.5


def test_trailing_rest_is_kept_and_no_tail_is_added_after_it():
    melody = Melody.from_notes([(60, 0, 1)], num_steps=16)  # 1 beat of sound, 3 of rest
    params, samples = read_wav(render_wav_bytes(melody))
    assert params.nframes == seconds_to_samples(4)
    assert np.all(samples[seconds_to_samples(1) + RELEASE :] == 0)


@pytest.mark.parametrize("tempo, rate", [(60.0, 22050), (90.0, 44100), (200.0, 16000)])
def test_length_follows_tempo_and_sample_rate(tempo, rate):
    params, _ = read_wav(render_wav_bytes(TUNE, tempo_bpm=tempo, sample_rate=rate))
    assert params.framerate == rate
    release = round(SynthConfig().release_s * rate)
    assert params.nframes == seconds_to_samples(TUNE.duration_beats, tempo, rate) + release


def test_write_wav_and_melody_save(tmp_path):
    path = write_wav(TUNE, tmp_path / "tune.wav", tempo_bpm=100)
    assert path == tmp_path / "tune.wav"
    assert path.read_bytes() == render_wav_bytes(TUNE, tempo_bpm=100)
    saved = TUNE.save(tmp_path / "saved.wav", tempo_bpm=100)
    assert saved.read_bytes() == path.read_bytes()


def test_audio_to_wav_bytes_clips_and_rejects_non_mono():
    _, samples = read_wav(audio_to_wav_bytes(np.array([0.0, 0.5, 2.0, -3.0]), 8000))
    assert samples == pytest.approx([0.0, 0.5, 1.0, -1.0], abs=1e-4)
    with pytest.raises(ValueError, match="mono"):
        audio_to_wav_bytes(np.zeros((10, 2)), SR)
    with pytest.raises(ValueError, match="finite"):
        audio_to_wav_bytes(np.array([0.0, np.nan]), SR)


# ------------------------------------------------------------------ pitch, timbre
def test_held_a4_sounds_at_440_hz_with_harmonics():
    samples = render_audio(A4_HELD).astype(np.float64)
    freqs, mags = spectrum(samples[: seconds_to_samples(4)])  # the whole 2 s note
    assert freqs[np.argmax(mags)] == pytest.approx(440.0, abs=1.0)
    fundamental = level_near(freqs, mags, 440)
    assert level_near(freqs, mags, 880) > 0.1 * fundamental
    # An instrument, not a bare sine: as the note is struck, clear 2nd, 3rd and 4th
    # harmonics ...
    freqs, mags = spectrum(samples[: SR // 2])
    fundamental = level_near(freqs, mags, 440)
    assert freqs[np.argmax(mags)] == pytest.approx(440.0, abs=3.0)
    assert level_near(freqs, mags, 880) > 0.25 * fundamental
    assert level_near(freqs, mags, 1320) > 0.1 * fundamental
    assert level_near(freqs, mags, 1760) > 0.03 * fundamental
    # ... and nothing in between (the partials are harmonic, no noise).
    assert level_near(freqs, mags, 660) < 0.01 * fundamental
    assert level_near(freqs, mags, 1100) < 0.01 * fundamental


def test_upper_harmonics_fade_faster_than_the_fundamental():
    samples = render_audio(A4_HELD).astype(np.float64)
    quarter = SR // 4
    early = spectrum(samples[:quarter])
    late = spectrum(samples[seconds_to_samples(4) - quarter : seconds_to_samples(4)])

    def brightness(freqs, mags):
        return level_near(freqs, mags, 1320, 10) / level_near(freqs, mags, 440, 10)

    assert brightness(*late) < 0.5 * brightness(*early)


def test_note_starts_on_its_beat_with_the_right_pitch():
    melody = Melody.from_notes([(57, 0, 1), (64, 2, 2)], num_steps=16)  # A3, then E4 on beat 2
    samples = render_audio(melody, tempo_bpm=60).astype(np.float64)
    onset = seconds_to_samples(2, tempo_bpm=60)
    assert np.all(samples[onset - SR // 2 : onset] == 0)  # the rest before it (after the tail)
    assert np.abs(samples[onset : onset + SR // 10]).max() > 0.1
    freqs, mags = spectrum(samples[onset : onset + SR])
    assert freqs[np.argmax(mags)] == pytest.approx(329.63, abs=1.5)


# ------------------------------------------------------------- silence and clicks
def test_silence_where_the_melody_rests():
    melody = Melody.from_notes([(60, 0, 1), (67, 3, 1)], num_steps=16)
    samples = render_audio(melody)
    rest_start, rest_end = seconds_to_samples(1), seconds_to_samples(3)
    assert np.all(samples[:1] == 0)
    assert np.abs(samples[rest_start - 100 : rest_start]).max() > 0.01  # still sounding
    assert np.all(samples[rest_start + RELEASE : rest_end] == 0)  # then true silence


def test_all_rest_melody_is_silent():
    samples = render_audio(Melody.from_tokens([0] + [1] * 15))
    assert samples.size == seconds_to_samples(4)
    assert np.all(samples == 0)


def test_each_note_starts_and_ends_at_zero():
    melody = Melody.from_notes([(48, 0, 0.25), (72, 1, 0.5), (84, 2, 1)], num_steps=16)
    samples = render_audio(melody)
    peak = np.abs(samples).max()
    for _, onset, duration in melody.notes():
        start = seconds_to_samples(onset)
        assert samples[start] == 0.0
        assert samples[start - 1] == 0.0
        assert np.abs(samples[start : start + 5]).max() < 0.02 * peak  # a gentle attack
        end = seconds_to_samples(onset + duration) + RELEASE
        assert samples[end - 1] == 0.0 and np.all(samples[end : end + 100] == 0)
        assert np.abs(samples[end - 5 : end]).max() < 0.02 * peak  # a gentle release


@pytest.mark.parametrize(
    "pitches", [(48, 55), (55, 48), (48, 48), (53, 53)], ids=["up", "down", "repeat", "repeat-f3"]
)
def test_no_clicks_at_note_boundaries(pitches):
    melody = alternating(pitches)  # sixteenth notes, legato: each onset cuts the last note
    samples = render_audio(melody).astype(np.float64)
    peak = np.abs(samples).max()
    assert peak == pytest.approx(0.8, abs=1e-3)
    # Low notes change slowly: the tone itself moves at most ~0.16 of the peak a sample,
    # a click (a jump to or from a sounding level) would move half the peak or more.
    assert np.abs(np.diff(samples)).max() < 0.2 * peak
    for _, onset, _ in melody.notes()[1:]:
        boundary = seconds_to_samples(onset)
        near = samples[boundary - 50 : boundary + 50]
        assert np.abs(np.diff(near)).max() < 0.2 * peak
    assert high_frequency_residue(samples) < 0.01


@pytest.mark.parametrize("pitches", [(72, 79), (84, 84), (69, 81)])
def test_high_notes_jump_no_more_at_boundaries_than_within_a_note(pitches):
    melody = alternating(pitches, num_notes=8)
    jumps = np.abs(np.diff(render_audio(melody).astype(np.float64)))
    near_boundary = np.zeros(jumps.size, dtype=bool)
    for _, onset, _ in melody.notes()[1:]:
        boundary = seconds_to_samples(onset)
        near_boundary[boundary - 50 : boundary + 50] = True
    assert jumps[near_boundary].max() < jumps[~near_boundary].max()


def test_click_detectors_catch_a_hard_gated_sine():
    """The checks above have teeth: sines switched on and off abruptly fail them."""
    melody = alternating((48, 55))
    t = np.arange(seconds_to_samples(melody.duration_beats)) / SR
    gated = np.zeros_like(t)
    for pitch, onset, duration in melody.notes():
        start, stop = seconds_to_samples(onset), seconds_to_samples(onset + duration)
        gated[start:stop] = np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t[: stop - start])
    assert np.abs(np.diff(gated)).max() > 0.2
    assert high_frequency_residue(gated) > 0.1


def test_no_clipping_and_normalised_peak():
    dense = Melody.from_tokens([2 + (i * 7) % 37 for i in range(64)])  # a new note every step
    for melody in (dense, TUNE, A4_HELD):
        samples = render_audio(melody)
        assert samples.dtype == np.float32
        assert np.all(np.isfinite(samples))
        assert np.abs(samples).max() == pytest.approx(0.8, abs=1e-3)
        _, pcm = read_wav(render_wav_bytes(melody))
        assert np.abs(pcm).max() < 0.81


def test_very_fast_tempo_still_renders_cleanly():
    samples = render_audio(alternating((60, 72)), tempo_bpm=2000)
    assert np.all(np.isfinite(samples)) and np.abs(samples).max() == pytest.approx(0.8, abs=1e-3)
    assert samples[0] == 0.0 and samples[-1] == 0.0


# -------------------------------------------------------- determinism and speed
def test_same_melody_gives_identical_bytes():
    assert render_wav_bytes(TUNE) == render_wav_bytes(Melody.from_tokens(TUNE.tokens.tolist()))
    assert render_wav_bytes(TUNE) != render_wav_bytes(TUNE.transpose(2))


# -------------------------------------------------------------- config, errors
@pytest.mark.parametrize("tempo", [0, -60, float("nan"), float("inf")])
def test_bad_tempo_raises(tempo):
    with pytest.raises(ValueError, match="tempo") as error:
        render_audio(TUNE, tempo_bpm=tempo)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="tempo"):
        render_wav_bytes(TUNE, tempo_bpm=tempo)


def test_absurdly_slow_tempo_is_refused_not_rendered():
    with pytest.raises(ValueError, match="limit"):
        render_audio(TUNE, tempo_bpm=0.001)


@pytest.mark.parametrize("rate", [0, -22050, 100, 22050.5, 10**7])
def test_bad_sample_rate_raises(rate):
    with pytest.raises(ValueError, match="sample rate") as error:
        render_audio(TUNE, sample_rate=rate)
    assert "\n" not in str(error.value)


def test_config_sets_timbre_and_timing():
    slow = SynthConfig(tempo_bpm=60.0, sample_rate=16000, release_s=0.1)
    samples = render_audio(TUNE, config=slow)
    assert samples.size == seconds_to_samples(TUNE.duration_beats, 60, 16000) + 1600
    # An explicit argument overrides a field left at its default ...
    faster = render_audio(TUNE, tempo_bpm=240.0, config=SynthConfig(release_s=0.1))
    assert faster.size == seconds_to_samples(TUNE.duration_beats, 240) + round(0.1 * SR)
    # ... but contradicting the config is an error.
    with pytest.raises(ValueError, match="conflicts"):
        render_audio(TUNE, tempo_bpm=90.0, config=slow)
    # A duller timbre (fundamental only) has no harmonics.
    pure = render_audio(A4_HELD, config=SynthConfig(harmonics=(1.0,))).astype(np.float64)
    freqs, mags = spectrum(pure[: seconds_to_samples(4)])
    assert level_near(freqs, mags, 880) < 0.01 * level_near(freqs, mags, 440)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"release_s": 0},
        {"attack_s": -0.01},
        {"harmonics": ()},
        {"sustain_level": 1.5},
        {"peak": 1.2},
        {"tempo_bpm": 0},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        SynthConfig(**kwargs)
