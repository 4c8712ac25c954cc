"""A small built-in synthesiser: a melody to audio samples or a WAV file.

No system library is needed (numpy for the signal, the standard ``wave`` module
for the file), so ``rlcomposer`` can play what it composes anywhere.

The timbre is a soft plucked / mallet / felt-piano tone made by additive
synthesis: each note is a sum of harmonics whose amplitudes fall off with the
harmonic number and whose upper harmonics die away faster than the fundamental,
so a note starts bright and mellows as it rings. An attack / decay / sustain /
release envelope shapes each note: a raised-cosine attack of a few milliseconds
and a release of tens of milliseconds after the note's end, so every note starts
and ends at exactly zero and there are no clicks. A note's release rings on past
the next onset and the two are summed, as on a real instrument. The result is
normalised to a fixed peak (0.8 of full scale): no clipping, no randomness, the
same melody always gives the same bytes.

Timing: a melody step is a sixteenth note; at ``tempo_bpm`` quarter notes a
minute a beat lasts ``60 / tempo_bpm`` seconds. The rendering lasts the melody's
whole duration (trailing rests included) plus, when the last note sounds to the
very end, that note's release tail.
"""

from __future__ import annotations

import io
import math
import numbers
import wave
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_TEMPO_BPM = 120.0
"""Quarter notes per minute when nobody says otherwise (audio, MIDI and MusicXML alike)."""


class SoundingMelody(Protocol):
    """What the synthesiser reads of a melody (:class:`rlcomposer.music.melody.Melody` is one)."""

    @property
    def duration_beats(self) -> float: ...

    def notes(self) -> list[tuple[int, float, float]]: ...


DEFAULT_SAMPLE_RATE = 22050
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
_NYQUIST_MARGIN = 0.45  # harmonics at or above this fraction of the sample rate are dropped
MAX_SECONDS = 3600.0  # refuse to render more than an hour (a typo'd tempo, not a tune)


@dataclass(frozen=True)
class SynthConfig:
    """How :func:`render_audio` sounds. Every field has a sensible default."""

    sample_rate: int = DEFAULT_SAMPLE_RATE
    """Samples per second of the output (8000..192000 Hz)."""

    tempo_bpm: float = DEFAULT_TEMPO_BPM
    """Quarter notes per minute; a sixteenth-note step lasts ``15 / tempo_bpm`` seconds."""

    harmonics: tuple[float, ...] = (1.0, 0.55, 0.32, 0.18, 0.11, 0.07, 0.045, 0.03)
    """Initial amplitude of harmonics 1, 2, 3, ... (the fundamental first), falling off."""

    attack_s: float = 0.005
    """Raised-cosine rise from silence to full level at each onset, in seconds."""

    decay_s: float = 0.3
    """Time constant of the fall from full level towards ``sustain_level``, in seconds."""

    sustain_level: float = 0.5
    """Level (0..1 of the attack peak) that a held note settles to."""

    release_s: float = 0.06
    """Raised-cosine fade to silence after a note ends, in seconds; rings into the next note."""

    base_decay_per_s: float = 0.5
    """Exponential decay rate of every harmonic while the note sounds, per second."""

    harmonic_decay_per_s: float = 1.5
    """Extra decay rate per harmonic above the fundamental, per second: harmonic ``k``
    decays at ``base_decay_per_s + harmonic_decay_per_s * (k - 1)``, so the tone mellows."""

    peak: float = 0.8
    """Peak absolute sample value after normalisation (fraction of full scale, 0..1]."""

    def __post_init__(self) -> None:
        _check_sample_rate(self.sample_rate)
        _check_tempo(self.tempo_bpm)
        harmonics = tuple(float(a) for a in self.harmonics)
        if not harmonics or not all(math.isfinite(a) and a >= 0 for a in harmonics):
            raise ValueError("harmonics must be a non-empty sequence of amplitudes >= 0")
        if harmonics[0] <= 0:
            raise ValueError("the fundamental's amplitude (harmonics[0]) must be > 0")
        object.__setattr__(self, "harmonics", harmonics)
        for name in ("attack_s", "decay_s", "release_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("base_decay_per_s", "harmonic_decay_per_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not (0 <= self.sustain_level <= 1):
            raise ValueError(f"sustain_level must be between 0 and 1, got {self.sustain_level!r}")
        if not (0 < self.peak <= 1):
            raise ValueError(f"peak must be in (0, 1], got {self.peak!r}")


_DEFAULTS = {f.name: f.default for f in fields(SynthConfig)}


def _check_tempo(tempo_bpm: float) -> None:
    if isinstance(tempo_bpm, bool) or not isinstance(tempo_bpm, numbers.Real):
        raise ValueError(f"tempo must be a number of beats per minute, got {tempo_bpm!r}")
    if not (math.isfinite(tempo_bpm) and tempo_bpm > 0):
        raise ValueError(f"tempo must be a positive number of beats per minute, got {tempo_bpm!r}")


def _check_sample_rate(sample_rate: int) -> None:
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int | np.integer)
        or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
    ):
        raise ValueError(
            f"sample rate must be a whole number of Hz from {MIN_SAMPLE_RATE} to "
            f"{MAX_SAMPLE_RATE}, got {sample_rate!r}"
        )


def _resolve(config: SynthConfig | None, tempo_bpm: float, sample_rate: int) -> SynthConfig:
    """The config to use: explicit (non-default) arguments override ``config``'s fields."""
    _check_tempo(tempo_bpm)
    _check_sample_rate(sample_rate)
    if config is None:
        return SynthConfig(sample_rate=int(sample_rate), tempo_bpm=float(tempo_bpm))
    updates: dict[str, float | int] = {}
    for name, value in (("tempo_bpm", float(tempo_bpm)), ("sample_rate", int(sample_rate))):
        configured = getattr(config, name)
        if value != _DEFAULTS[name] and value != configured:
            if configured != _DEFAULTS[name]:
                raise ValueError(f"{name}={value:g} conflicts with config.{name}={configured:g}")
            updates[name] = value
    return replace(config, **updates) if updates else config


def _note_samples(pitch: int, num_hold: int, num_release: int, cfg: SynthConfig) -> np.ndarray:
    """One note: ``num_hold`` samples sounding plus a ``num_release`` fade, 0 at both ends.

    Computed in float32 (ample for 16-bit output, and several times faster).
    """
    rate = cfg.sample_rate
    length = num_hold + num_release
    t = np.arange(length, dtype=np.float32) / np.float32(rate)
    frequency = 440.0 * 2.0 ** ((pitch - 69) / 12.0)

    # Phase from a 32-bit fixed-point accumulator: exact wrap-around, no big arguments to sin.
    step = np.uint64(round(frequency / rate * 2.0**32))
    turns = (np.arange(length, dtype=np.uint64) * step) & np.uint64(0xFFFFFFFF)
    phase = turns.astype(np.float32) * np.float32(2.0 * np.pi / 2.0**32)

    # Harmonics: amplitude a_k, decaying at base + slope * (k - 1) per second.
    # sin(k x) comes from the Chebyshev recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x)
    # and each harmonic's extra decay is a power of exp(-slope t): no sin/exp per harmonic.
    amplitudes = np.asarray(cfg.harmonics) / sum(cfg.harmonics)
    num_harmonics = max(1, min(amplitudes.size, math.ceil(_NYQUIST_MARGIN * rate / frequency) - 1))
    sine = np.sin(phase)
    two_cos = np.float32(2.0) * np.cos(phase)
    step_decay = np.exp(np.float32(-cfg.harmonic_decay_per_s) * t)
    decay = step_decay.copy()
    tone = np.float32(amplitudes[0]) * sine
    previous = np.zeros(length, dtype=np.float32)
    for k in range(1, num_harmonics):
        sine, previous = two_cos * sine - previous, sine
        if amplitudes[k] > 0:
            tone += (np.float32(amplitudes[k]) * decay) * sine
        decay *= step_decay

    # ADSR: raised-cosine attack from exactly 0, exponential decay towards the
    # sustain level (which itself fades at the base rate), raised-cosine release
    # ending at exactly 0.
    sustain = np.float32(cfg.sustain_level)
    envelope = sustain + (np.float32(1.0) - sustain) * np.exp(np.float32(-1.0 / cfg.decay_s) * t)
    envelope *= np.exp(np.float32(-cfg.base_decay_per_s) * t)
    num_attack = max(1, min(round(cfg.attack_s * rate), num_hold))
    ramp = np.pi * np.arange(num_attack) / num_attack
    envelope[:num_attack] *= (0.5 - 0.5 * np.cos(ramp)).astype(np.float32)
    fade = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, num_release + 1) / num_release)
    fade[-1] = 0.0
    envelope[num_hold:] *= fade.astype(np.float32)
    return tone * envelope


def render_audio(
    melody: SoundingMelody,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    config: SynthConfig | None = None,
) -> np.ndarray:
    """Render ``melody`` as float32 mono samples in [-1, 1].

    The length is the melody's duration (``melody.duration_beats * 60 / tempo``
    seconds, trailing rests included) times the sample rate, plus the release
    tail of a note that sounds to the very end. Rests are exact zeros (after the
    previous note's release). ``config`` sets the timbre; ``tempo_bpm`` and
    ``sample_rate``, when given, override its fields (a conflicting value in both
    raises ``ValueError``). Raises ``ValueError`` for a non-positive tempo or an
    unusable sample rate.
    """
    cfg = _resolve(config, tempo_bpm, sample_rate)
    rate = cfg.sample_rate
    samples_per_beat = 60.0 * rate / cfg.tempo_bpm
    num_release = max(1, round(cfg.release_s * rate))
    spans = []
    for pitch, onset, duration in melody.notes():
        start = round(onset * samples_per_beat)
        stop = round((onset + duration) * samples_per_beat)
        spans.append((pitch, start, max(1, stop - start)))
    seconds = melody.duration_beats * 60.0 / cfg.tempo_bpm
    if seconds > MAX_SECONDS:
        raise ValueError(
            f"{melody.duration_beats:g} beats at tempo {cfg.tempo_bpm:g} would last {seconds:.0f} s;"
            f" the limit is {MAX_SECONDS:.0f} s"
        )
    total = round(melody.duration_beats * samples_per_beat)
    if spans:
        total = max(total, max(start + hold + num_release for _, start, hold in spans))
    out = np.zeros(total, dtype=np.float32)
    for pitch, start, hold in spans:
        note = _note_samples(pitch, hold, num_release, cfg)
        out[start : start + note.size] += note
    loudest = float(np.max(np.abs(out))) if total else 0.0
    if loudest > 0:
        out *= np.float32(cfg.peak / loudest)
    return out


def audio_to_wav_bytes(samples: np.ndarray, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
    """16-bit PCM mono WAV bytes from float samples in [-1, 1] (values outside are clipped)."""
    _check_sample_rate(sample_rate)
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"audio must be a 1-D (mono) array of samples, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("audio samples must be finite numbers")
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()


def render_wav_bytes(
    melody: SoundingMelody,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> bytes:
    """The melody as a 16-bit PCM mono WAV file (bytes), rendered by :func:`render_audio`."""
    samples = render_audio(melody, tempo_bpm=tempo_bpm, sample_rate=sample_rate)
    return audio_to_wav_bytes(samples, sample_rate)


def write_wav(
    melody: SoundingMelody,
    path: str | Path,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> Path:
    """Write the melody to ``path`` as a 16-bit PCM mono WAV file; returns the path."""
    path = Path(path)
    path.write_bytes(render_wav_bytes(melody, tempo_bpm=tempo_bpm, sample_rate=sample_rate))
    return path
