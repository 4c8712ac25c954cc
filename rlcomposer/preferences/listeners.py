"""Simulated listeners: raters that are not people.

A simulated listener is any callable ``score(melody: Melody) -> float`` (higher:
liked more), given on the command line as ``package.module:function`` or as the
short name of a built-in listener (:data:`BUILTIN_LISTENERS`). A
:class:`SimulatedListener` wraps it and answers like a person would, with noise
in the spirit of B-Pref's simulated teachers (:class:`ListenerNoise`):

* a Bradley–Terry temperature in units of the listener's own *score spread*
  (the standard deviation of its scores on the prior melodies that do not bore
  it, measured by :meth:`SimulatedListener.calibrate`), so "noisy" means the
  same for every listener whatever the scale of its scores;
* a mistake rate: that share of answers is uniformly random;
* a tie band: a score difference below ``tie_band`` spreads is a tie.

Stars (1–5) are the quintile of the (noisy) score within the calibrated
distribution of prior melodies.

:func:`rlcomposer.feedback.simulated_raters.simulate_ratings` lets a listener
rate the pool through the same store functions as the app, as rater ``sim:<function>``.

Built-in tastes (all computed from the tokens with numpy, some thousands of
melodies a second on one core), each hearing a melody in its own metre, key and
pick-up (beats of :attr:`~rlcomposer.music.metre.Metre.beat_steps`, bars of its
metre counted from its first downbeat, the scale and tonic of its key; a token
array, like a melody of 4/4 in C major, is heard as before: quarter-note beats,
16-step bars, C major with the tonics C and A):

* :func:`lyrical`: stepwise motion, long notes, in key, ends on the tonic, few rests;
* :func:`rhythmic`: many short notes, syncopation, repeated rhythmic cells;
* :func:`adventurous`: wide range, leaps, chromatic notes (rare in the folk prior).

They were the tastes the tuning was developed against, so results are judged by
the *panel* instead (``panel:K``, :mod:`rlcomposer.preferences.panel`): a seeded
family of listeners nobody tuned anything to.

Every listener (built-ins and panel) subtracts :func:`boredom`, a penalty that is
0 for nearly every prior melody and large for a collapsed one: one pitch
repeated over and over, two pitches only, or no shape at all. It is measured in
units of the listener's score spread on prior melodies, so a collapsed melody
loses to a typical prior melody for every listener.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import NUM_SPECIAL_TOKENS, REST, STEPS_PER_BAR, Melody
from rlcomposer.music.notes import NoteGrid, note_events, note_grid
from rlcomposer.preferences.boredom import BOREDOM_RUN, boredom, boredom_of_pitches
from rlcomposer.preferences.listener_errors import ListenerError
from rlcomposer.validation import NON_NEGATIVE, PROBABILITY, check_config

ListenerFunction = Callable[[Melody], float]


# ------------------------------------------------------------------ features
_IN_KEY = np.zeros(12, dtype=bool)
_IN_KEY[[0, 2, 4, 5, 7, 9, 11]] = True
_TONIC = np.zeros(12, dtype=bool)
_TONIC[[0, 9]] = True  # C major and its relative A minor


def _tokens(melody: Melody | np.ndarray) -> np.ndarray:
    return np.asarray(melody.tokens if isinstance(melody, Melody) else melody, dtype=np.int64)


def _metric(melody: Melody | np.ndarray) -> tuple[int, int, int]:
    """Steps per bar and per beat, and the metric position of step 0 (token arrays: 4/4 from a downbeat)."""
    if not isinstance(melody, Melody):
        return STEPS_PER_BAR, 4, 0
    return melody.metre.steps_per_bar, melody.metre.beat_steps, melody.metric_offset


def _key_masks(melody: Melody | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-scale and tonic pitch-class masks: the melody's key (token arrays and C major: C major,
    tonics C and A, as the built-ins always heard them)."""
    if not isinstance(melody, Melody) or melody.key.name == "C major":
        return _IN_KEY, _TONIC
    scale = np.zeros(12, dtype=bool)
    scale[list(melody.key.scale_pitch_classes())] = True
    tonic = np.zeros(12, dtype=bool)
    tonic[melody.key.tonic_pitch_class] = True
    return scale, tonic


_BUILTIN_SPREAD = {"lyrical": 0.55, "rhythmic": 0.95, "adventurous": 0.51}
"""Score spread (std) of the built-ins without boredom on 2000 prior melodies: the
unit in which each subtracts :func:`boredom`."""


def lyrical(melody: Melody) -> float:
    """Likes singable lines: stepwise motion, long notes, in key, ending on the tonic.

    Dislikes leaps, rests and busy rhythm. Roughly what the folk prior already
    does well, with a taste for the calmer tunes; but, like every listener, bored
    by one pitch repeated over and over or a line without shape (:func:`boredom`).
    """
    tokens = _tokens(melody)
    onsets, pitches, durations = note_events(tokens)
    bored = _BUILTIN_SPREAD["lyrical"] * boredom_of_pitches(pitches)
    if pitches.size < 2:
        return -2.0 - bored
    intervals = np.abs(np.diff(pitches))
    steps = np.count_nonzero((intervals >= 1) & (intervals <= 2)) / intervals.size
    leaps = np.count_nonzero(intervals >= 5) / intervals.size
    pitch_classes = pitches % 12
    scale, tonic = _key_masks(melody)
    in_key = np.count_nonzero(scale[pitch_classes]) / pitches.size
    mean_duration = float(np.mean(durations))  # sixteenths
    rests = np.count_nonzero(tokens == REST) / tokens.size
    ends_tonic = float(tonic[pitch_classes[-1]])
    return float(1.5 * steps - 1.5 * leaps + 0.8 * math.log2(mean_duration) + 1.0 * in_key
                 + 0.5 * ends_tonic - 2.0 * rests - bored)


def rhythmic(melody: Melody) -> float:
    """Likes rhythmic drive: many short notes, syncopation, repeated rhythmic cells.

    A note starting off the beat and held across the next beat counts as a
    syncopation; the onset pattern of each beat compared with that of the same
    beat a bar earlier measures repeated rhythmic cells. Bored, like every
    listener, by one pitch drummed over and over (:func:`boredom`).
    """
    tokens = _tokens(melody)
    onsets, pitches, durations = note_events(tokens)
    bored = _BUILTIN_SPREAD["rhythmic"] * boredom_of_pitches(pitches)
    if pitches.size < 2:
        return -2.0 - bored
    num_steps = tokens.size
    bar, beat, offset = _metric(melody)
    density = pitches.size / num_steps * 4  # notes per quarter
    short = np.count_nonzero(durations <= 2) / pitches.size
    in_beat = (onsets + offset) % beat
    offbeat = in_beat != 0
    crosses = (in_beat + durations) > beat
    syncopation = np.count_nonzero(offbeat & crosses) / pitches.size
    offbeat_share = np.count_nonzero(offbeat) / pitches.size
    onset_mask = tokens >= NUM_SPECIAL_TOKENS
    repeated = 0.0
    if num_steps >= 2 * bar:
        start = (-offset) % beat  # the first beat
        first = onset_mask[start:num_steps - bar]
        later = onset_mask[start + bar:]
        usable = (num_steps - bar - start) // beat * beat
        same = (first[:usable].reshape(-1, beat) == later[:usable].reshape(-1, beat)).all(axis=1)
        busy = later[:usable].reshape(-1, beat).sum(axis=1) >= 2
        repeated = float(np.count_nonzero(same & busy)) / max(usable // beat, 1)
    rests = np.count_nonzero(tokens == REST) / num_steps
    return float(0.6 * density + 1.0 * short + 2.5 * syncopation + 0.8 * offbeat_share
                 + 1.5 * repeated - 1.0 * rests - bored)


def adventurous(melody: Melody) -> float:
    """Likes what folk tunes rarely do: a wide range, big leaps, chromatic notes.

    Also likes variety of pitch (many distinct pitches per note); stepwise lines
    score low, having no leaps and small intervals. The folk prior mostly stays
    in key within an octave, so this taste pulls away from it. Bored, like every
    listener, by a melody without shape (:func:`boredom`).
    """
    tokens = _tokens(melody)
    onsets, pitches, durations = note_events(tokens)
    bored = _BUILTIN_SPREAD["adventurous"] * boredom_of_pitches(pitches)
    if pitches.size < 2:
        return -2.0 - bored
    intervals = np.abs(np.diff(pitches))
    pitch_range = float(pitches.max() - pitches.min())
    leaps = np.count_nonzero(intervals >= 5) / intervals.size
    mean_interval = float(np.mean(intervals))
    chromatic = np.count_nonzero(~_key_masks(melody)[0][pitches % 12]) / pitches.size
    distinct = np.unique(pitches).size / pitches.size
    return float(pitch_range / 12 + 1.5 * leaps + 0.15 * mean_interval + 3.0 * chromatic + 0.5 * distinct
                 - bored)


PANEL_PREFIX = "panel:"
"""``panel:K`` names member K of the panel (:mod:`rlcomposer.preferences.panel`)."""

BUILTIN_LISTENERS: dict[str, ListenerFunction] = {
    "lyrical": lyrical,
    "rhythmic": rhythmic,
    "adventurous": adventurous,
}
"""Short names accepted by ``--listener`` (``lyrical`` is ``rlcomposer.preferences.listeners:lyrical``)."""


def load_listener(spec: str) -> tuple[ListenerFunction, str]:
    """The listener function of ``spec`` and its name (used in ``sim:<name>``).

    ``spec`` is a built-in short name (see :data:`BUILTIN_LISTENERS`), ``panel:K``
    (member ``K`` of the panel, :func:`rlcomposer.preferences.panel.panel_listener`;
    its name is ``panel:K``), ``package.module:function`` (found on ``sys.path``, where the
    CLI puts the working directory last) or ``path/to/file.py:function`` (that file).
    """
    from rlcomposer.preferences.reward_functions import load_callable

    if not isinstance(spec, str) or not spec.strip():
        raise ListenerError("--listener is empty: give a built-in name "
                            f"({', '.join(BUILTIN_LISTENERS)}) or package.module:function")
    spec = spec.strip()
    if spec in BUILTIN_LISTENERS:
        return BUILTIN_LISTENERS[spec], spec
    if spec.startswith(PANEL_PREFIX):
        from rlcomposer.preferences.panel import PANEL_SIZE, panel_listener

        index = spec[len(PANEL_PREFIX):].strip()
        if not (index.isascii() and index.isdigit()) or not 0 <= int(index) < PANEL_SIZE:
            raise ListenerError(f"listener '{spec}': the panel has members panel:0 .. "
                                f"panel:{PANEL_SIZE - 1}, give an integer 0..{PANEL_SIZE - 1}")
        member = panel_listener(int(index))
        return member, member.name
    if ":" not in spec:
        raise ListenerError(f"listener '{spec}' is neither a built-in listener "
                            f"({', '.join(BUILTIN_LISTENERS)}) nor of the form package.module:function")
    try:
        function = load_callable(spec, what="listener")
    except RLComposerError as error:
        raise ListenerError(str(error)) from None
    name = spec.rpartition(":")[2].split(".")[-1]
    return function, name


# --------------------------------------------------------------------- noise
@dataclass(frozen=True)
class ListenerNoise:
    """How a simulated listener's answers stray from its scores (B-Pref style)."""

    temperature: float = 0.5
    """Bradley–Terry temperature, in units of the listener's score spread on prior
    melodies: P(A beats B) = sigmoid(Δscore / (temperature · spread)). 0 answers
    by the scores alone (apart from mistakes)."""
    mistake_rate: float = 0.1
    """Share of answers that are uniformly random (A or B; a star count 1-5)."""
    tie_band: float = 0.05
    """A pair whose score difference is below ``tie_band`` · spread is a tie."""
    star_noise: float = 0.5
    """Standard deviation of the Gaussian noise added to a score before it is
    turned into stars, in units of the spread."""

    def __post_init__(self) -> None:
        for name in ("temperature", "tie_band", "star_noise"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ListenerError(f"listener noise {name.replace('_', '-')} {value!r} must be 0 or more")
        if not (isinstance(self.mistake_rate, (int, float)) and 0.0 <= self.mistake_rate <= 1.0):
            raise ListenerError(f"listener mistake rate {self.mistake_rate!r} must be between 0 and 1")
        check_config(self, {"temperature": NON_NEGATIVE, "tie_band": NON_NEGATIVE, "star_noise": NON_NEGATIVE,
                            "mistake_rate": PROBABILITY}, "listener noise ")


def _describe(melody: Melody) -> str:
    head = " ".join(str(int(t)) for t in melody.tokens[:16])
    melody_id = melody.metadata.get("melody_id") if isinstance(melody.metadata, dict) else None
    where = f"melody id {melody_id}" if melody_id is not None else "melody"
    return f"{where} (tokens {head}{' ...' if melody.num_steps > 16 else ''})"


def _check_pair(a: Melody, b: Melody) -> None:
    if isinstance(a, Melody) and isinstance(b, Melody) and (a.metre != b.metre or a.num_steps != b.num_steps):
        raise ListenerError(f"a listener compares melodies of one metre and one length, not {a.num_steps} steps "
                            f"of {a.metre.name} with {b.num_steps} steps of {b.metre.name}")


# ------------------------------------------------------------------ listener
class SimulatedListener:
    """A listener function that answers comparisons and gives stars, with noise.

    Call :meth:`calibrate` on prior melodies (or pass ``spread`` and
    ``star_edges``) before it answers.
    """

    def __init__(self, score_fn: ListenerFunction, name: str, noise: ListenerNoise = ListenerNoise(),
                 rng: np.random.Generator | int | None = None, *, spread: float | None = None,
                 star_edges: Sequence[float] | None = None):
        if not callable(score_fn):
            raise ListenerError(f"listener '{name}' is not callable")
        if not isinstance(noise, ListenerNoise):
            raise ListenerError("noise must be a ListenerNoise")
        self.score_fn = score_fn
        self.name = str(name)
        self.noise = noise
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.spread: float | None = None
        self.center: float = 0.0
        self.star_edges: np.ndarray | None = None
        if spread is not None:
            self._set_spread(float(spread))
        if star_edges is not None:
            edges = np.asarray(star_edges, dtype=np.float64)
            if edges.shape != (4,) or np.any(np.diff(edges) < 0):
                raise ListenerError("star_edges must be 4 increasing scores (between 1|2 ... 4|5 stars)")
            self.star_edges = edges

    @property
    def rater_name(self) -> str:
        """The rater this listener writes as: ``sim:<function>``."""
        return f"sim:{self.name}"

    def __repr__(self) -> str:
        return f"SimulatedListener({self.rater_name}, spread={self.spread}, {self.noise})"

    # ------------------------------------------------------------- scoring
    def score(self, melody: Melody) -> float:
        """The noiseless score; a listener that raises or returns NaN/inf raises ListenerError."""
        try:
            value = float(self.score_fn(melody))
        except Exception as error:
            raise ListenerError(f"listener {self.rater_name} raised {type(error).__name__}: {error} "
                                f"on {_describe(melody)}") from None
        if not math.isfinite(value):
            raise ListenerError(f"listener {self.rater_name} returned {value} for {_describe(melody)}")
        return value

    def scores(self, melodies: Sequence[Melody]) -> np.ndarray:
        """Noiseless scores of many melodies (in one call when the listener has ``score_batch``)."""
        melodies = list(melodies)
        batch = getattr(self.score_fn, "score_batch", None)
        if batch is None or not melodies:
            return np.array([self.score(m) for m in melodies], dtype=np.float64)
        try:
            values = np.asarray(batch(melodies), dtype=np.float64)
        except Exception as error:
            raise ListenerError(f"listener {self.rater_name} raised {type(error).__name__}: {error} "
                                f"scoring {len(melodies)} melodies") from None
        bad = np.flatnonzero(~np.isfinite(values))
        if values.shape != (len(melodies),) or bad.size:
            if values.shape != (len(melodies),):
                raise ListenerError(f"listener {self.rater_name}: score_batch returned shape {values.shape} "
                                    f"for {len(melodies)} melodies")
            raise ListenerError(f"listener {self.rater_name} returned {values[bad[0]]} for "
                                f"{_describe(melodies[bad[0]])}")
        return values

    def _set_spread(self, spread: float) -> None:
        if not math.isfinite(spread) or spread <= 0:
            raise ListenerError(f"listener {self.rater_name}: spread {spread} must be positive")
        self.spread = spread

    def calibrate(self, reference: Sequence[Melody]) -> float:
        """Measure the score spread and star quintiles on ``reference`` (prior melodies).

        The spread is the standard deviation over the reference melodies that do
        not bore (:func:`boredom` 0; all of them if fewer than 10 remain): the few
        collapsed melodies a prior writes would otherwise inflate it, and with it
        every listener's noise. The star quintiles are over all of them.
        """
        reference = list(reference)
        if len(reference) < 10:
            raise ListenerError(f"calibrating listener {self.rater_name} needs at least 10 reference "
                                f"melodies, got {len(reference)}")
        values = self.scores(reference)
        lively = np.array([boredom(m) == 0 for m in reference])
        usable = values[lively] if np.count_nonzero(lively) >= 10 else values
        spread = float(np.std(usable))
        if spread <= 1e-12:
            raise ListenerError(f"listener {self.rater_name} gives every reference melody the same score "
                                f"({values[0]:g}): it cannot tell melodies apart")
        self._set_spread(spread)
        self.center = float(np.mean(usable))
        self.star_edges = np.quantile(values, [0.2, 0.4, 0.6, 0.8])
        return spread

    def _need_spread(self) -> float:
        if self.spread is None:
            raise ListenerError(f"listener {self.rater_name} is not calibrated: call calibrate() on "
                                "prior melodies (or give spread=) first")
        return self.spread

    # ------------------------------------------------------------- answers
    def prefers(self, a: Melody, b: Melody) -> float:
        """Noiseless P(a beats b): 1, 0, or 0.5 when the scores differ by less than the tie band."""
        spread = self._need_spread()
        return self._preference(self.score(a) - self.score(b), spread)

    def preferences(self, first: Sequence[Melody], second: Sequence[Melody]) -> np.ndarray:
        """Noiseless P(first[i] beats second[i]) for many pairs at once (1, 0 or 0.5), ``[N]``."""
        if len(first) != len(second):
            raise ListenerError(f"{len(first)} first melodies but {len(second)} second melodies")
        for a, b in zip(first, second, strict=True):
            _check_pair(a, b)
        spread = self._need_spread()
        delta = self.scores(first) - self.scores(second)
        result = np.where(delta > 0, 1.0, 0.0)
        result[(np.abs(delta) < self.noise.tie_band * spread) | (delta == 0)] = 0.5
        return result

    def _preference(self, delta: float, spread: float) -> float:
        if abs(delta) < self.noise.tie_band * spread or delta == 0:
            return 0.5
        return 1.0 if delta > 0 else 0.0

    def answer_from_scores(self, score_a: float, score_b: float) -> str:
        """A noisy answer ("a", "b" or "tie") for two known scores."""
        spread = self._need_spread()
        if self.rng.random() < self.noise.mistake_rate:
            return "a" if self.rng.random() < 0.5 else "b"
        delta = score_a - score_b
        if abs(delta) < self.noise.tie_band * spread:
            return "tie"
        if self.noise.temperature == 0:
            return "a" if delta > 0 else "b"
        logit = delta / (self.noise.temperature * spread)
        p_a = 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))
        return "a" if self.rng.random() < p_a else "b"

    def compare(self, a: Melody, b: Melody) -> str:
        """A noisy answer to "which do you prefer?": ``"a"``, ``"b"`` or ``"tie"``. Two melodies of
        different metres or lengths are not compared (one line)."""
        self._need_spread()
        _check_pair(a, b)
        return self.answer_from_scores(self.score(a), self.score(b))

    def stars(self, melody: Melody) -> int:
        """A noisy 1-5 star rating: the quintile of the noisy score among prior melodies."""
        spread = self._need_spread()
        if self.star_edges is None:
            raise ListenerError(f"listener {self.rater_name} has no star quintiles: call calibrate() first")
        value = self.score(melody)
        if self.rng.random() < self.noise.mistake_rate:
            return int(self.rng.integers(1, 6))
        noisy = value + self.rng.normal(0.0, self.noise.star_noise * spread) if self.noise.star_noise else value
        return int(np.searchsorted(self.star_edges, noisy, side="right")) + 1


__all__ = [
    "BOREDOM_RUN", "BUILTIN_LISTENERS", "ListenerError", "ListenerNoise", "NoteGrid", "PANEL_PREFIX",
    "SimulatedListener", "adventurous", "boredom", "load_listener", "lyrical", "note_grid", "rhythmic",
]
