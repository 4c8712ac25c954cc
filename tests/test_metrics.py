"""Tests of the Sequence Tutor / RL Tuner music metrics (rlcomposer.music.metrics)."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from rlcomposer.music.melody import HOLD, REST, Melody, pitch_token, random_melody
from rlcomposer.music.metrics import (
    LEAP_DOUBLED,
    LEAP_RESOLVED,
    METRIC_LABELS,
    MusicMetrics,
    autocorrelation,
    compute_music_metrics,
    excessive_repeats,
    format_metrics_table,
    leap_resolutions,
    notes_in_motif,
    notes_in_repeated_motif,
    notes_not_in_key,
    starts_with_tonic,
    unique_highest_note,
    unique_lowest_note,
)

_NAMES = {
    "C": 0,
    "C#": 1,
    "D": 2,
    "D#": 3,
    "E": 4,
    "F": 5,
    "F#": 6,
    "G": 7,
    "G#": 8,
    "A": 9,
    "A#": 10,
    "B": 11,
}


def tok(name: str) -> int:
    """``"C4"`` -> token, ``"-"`` -> HOLD, ``"r"`` -> REST."""
    if name == "-":
        return HOLD
    if name == "r":
        return REST
    return pitch_token(12 * (int(name[-1]) + 1) + _NAMES[name[:-1]])


def mel(text: str) -> Melody:
    """A melody from space-separated token names, e.g. ``"C4 - D4 - r -"``."""
    return Melody.from_tokens(tok(name) for name in text.split())


def steps(flags: np.ndarray) -> list[int]:
    return np.flatnonzero(flags).tolist()


# ------------------------------------------------------------ excessive repeats
def test_same_note_struck_ten_times_is_excessively_repeated():
    melody = mel(" ".join(["C4"] * 10))
    # RL Tuner: the 6th and later strikes follow more than 4 equal tokens.
    assert steps(excessive_repeats(melody)) == [5, 6, 7, 8, 9]
    assert compute_music_metrics([melody]).excessively_repeated == pytest.approx(0.5)


def test_five_strikes_are_fine_six_are_not():
    assert not excessive_repeats(mel("C4 C4 C4 C4 C4 D4")).any()
    assert steps(excessive_repeats(mel("C4 C4 C4 C4 C4 C4"))) == [5]


def test_repeats_separated_by_holds_allow_seven_strikes():
    seven = mel(" ".join(["C4 -"] * 7))
    eight = mel(" ".join(["C4 -"] * 8))
    assert not excessive_repeats(seven).any()
    assert steps(excessive_repeats(eight)) == [14]


def test_another_note_breaks_the_run():
    melody = mel("C4 C4 C4 C4 D4 C4 C4 C4 C4")
    assert not excessive_repeats(melody).any()


def test_long_held_note_counts_as_repeated_like_rl_tuner():
    # A half note: the onset and 7 HOLDs. HOLD k follows k-1 HOLDs; more than 4 is excessive.
    melody = mel("C4 - - - - - - -")
    assert steps(excessive_repeats(melody)) == [6, 7]


def test_third_rest_token_in_a_row_is_excessive():
    assert steps(excessive_repeats(mel("C4 r r r"))) == [3]
    assert not excessive_repeats(mel("C4 r - - - D4")).any()


# -------------------------------------------------------------------------- key
def test_c_major_scale_is_in_key_and_starts_on_the_tonic():
    scale = mel("C4 - - - D4 - - - E4 - - - F4 - - - G4 - - - A4 - - - B4 - - - C5 - - -")
    assert not notes_not_in_key(scale).any()
    assert starts_with_tonic(scale)
    metrics = compute_music_metrics([scale])
    assert metrics.not_in_key == 0.0
    assert metrics.starts_with_tonic == 1.0


def test_f_sharps_are_out_of_key_per_step():
    melody = mel("C4 - F#4 - G4 - F#4 -")
    assert steps(notes_not_in_key(melody)) == [2, 6]
    # RL Tuner divides by all steps (its "notes" are actions), not by onsets.
    metrics = compute_music_metrics([melody])
    assert metrics.not_in_key == pytest.approx(2 / 8)
    assert metrics.num_notes == 4
    assert metrics.num_steps == 8


def test_every_black_key_is_out_of_key():
    melody = mel("C#4 D#4 F#4 G#4 A#4 C#5 A#3")
    assert notes_not_in_key(melody).all()


def test_tonic_is_any_c_on_the_first_step():
    assert starts_with_tonic(mel("C3 D3"))
    assert starts_with_tonic(mel("C6 -"))
    assert not starts_with_tonic(mel("r C4 - -"))  # RL Tuner checks beat 0
    assert not starts_with_tonic(mel("G4 C4"))


def test_a_is_a_tonic_only_when_asked():
    a_minor = mel("A3 - B3 - C4 - D4 - E4 -")
    assert not starts_with_tonic(a_minor)
    assert starts_with_tonic(a_minor, tonic_pitch_classes=(0, 9))
    assert compute_music_metrics([a_minor], tonic_pitch_classes=(0, 9)).starts_with_tonic == 1.0


# ------------------------------------------------------------------------ leaps
def test_leap_followed_by_steps_back_to_the_start_is_resolved():
    melody = mel("C4 - A4 - G4 - F4 - E4 - D4 - C4 -")
    outcomes = leap_resolutions(melody)
    assert steps(outcomes == LEAP_RESOLVED) == [12]
    assert not (outcomes == LEAP_DOUBLED).any()
    assert compute_music_metrics([melody]).leaps_resolved == 1.0


def test_a_single_step_back_does_not_yet_resolve_the_leap():
    # RL Tuner resolves gradually: the melody must get back to the leapt-from note.
    melody = mel("C4 - A4 - G4 -")
    assert not leap_resolutions(melody).any()
    assert math.isnan(compute_music_metrics([melody]).leaps_resolved)


def test_leap_followed_by_a_leap_in_the_same_direction_is_not_resolved():
    melody = mel("C4 - G4 - D5 -")
    outcomes = leap_resolutions(melody)
    assert outcomes.tolist() == [0, 0, 0, 0, LEAP_DOUBLED, 0]
    metrics = compute_music_metrics([melody])
    assert metrics.leaps_resolved == 0.0
    assert metrics.num_leaps == 1


def test_leap_back_resolves_only_after_more_than_six_steps():
    quick = mel("C4 A4 - - - - - - C4")  # 6 steps since the leap: neither
    slow = mel("C4 A4 - - - - - - - C4")  # 7 steps: resolved
    assert not leap_resolutions(quick).any()
    assert steps(leap_resolutions(slow) == LEAP_RESOLVED) == [9]


def test_rests_are_skipped_when_measuring_a_leap():
    melody = mel("C4 r G4 - r F4 E4 D4 C4")
    assert steps(leap_resolutions(melody) == LEAP_RESOLVED) == [8]


def test_leaps_resolved_pools_counts_over_melodies():
    resolved = mel("C4 - A4 - G4 - F4 - E4 - D4 - C4 -")
    doubled = mel("C4 - G4 - D5 -")
    metrics = compute_music_metrics([resolved, doubled, resolved])
    assert metrics.leaps_resolved == pytest.approx(2 / 3)
    assert metrics.num_leaps == 3


# ---------------------------------------------------------------- unique extrema
def test_two_highest_notes_are_not_a_unique_max():
    melody = mel("C4 - G4 - E4 - G4 -")
    assert not unique_highest_note(melody)
    assert unique_lowest_note(melody)
    metrics = compute_music_metrics([melody])
    assert metrics.unique_max == 0.0
    assert metrics.unique_min == 1.0


def test_a_held_note_is_struck_once():
    melody = mel("C4 G4 - - - E4 C4")
    assert unique_highest_note(melody)
    assert not unique_lowest_note(melody)


def test_silence_has_no_unique_extrema():
    silence = mel("r - - -")
    assert not unique_highest_note(silence)
    assert not unique_lowest_note(silence)


# ----------------------------------------------------------------------- motifs
def test_repeated_four_note_motif():
    motif = "C4 - D4 - E4 - F4 -"
    twice = mel(f"{motif} {motif}")
    thrice = mel(f"{motif} {motif} {motif}")
    # Every 8-step window (ending at step 7 or later) holds 4 distinct pitches.
    assert steps(notes_in_motif(twice)) == list(range(7, 16))
    # Only the window at steps 8..15 occurs, whole, before its own start.
    assert steps(notes_in_repeated_motif(twice)) == [15]
    assert steps(notes_in_motif(thrice)) == list(range(7, 24))
    assert steps(notes_in_repeated_motif(thrice)) == list(range(15, 24))
    metrics = compute_music_metrics([thrice])
    assert metrics.in_motif == pytest.approx(17 / 24)
    assert metrics.in_repeated_motif == pytest.approx(9 / 24)


def test_two_pitches_are_not_a_motif():
    melody = mel("C4 D4 C4 D4 C4 D4 C4 D4 C4 D4 C4 D4 C4 D4 C4 D4")
    assert not notes_in_motif(melody).any()
    assert not notes_in_repeated_motif(melody).any()


def test_motif_occurrences_must_not_overlap():
    # Period 4: the window at 4..11 equals the one at 0..7, which overlaps it.
    melody = mel("C4 D4 E4 - C4 D4 E4 - C4 D4 E4 -")
    assert not notes_in_repeated_motif(melody).any()
    longer = mel("C4 D4 E4 - C4 D4 E4 - C4 D4 E4 - C4 D4 E4 -")
    assert steps(notes_in_repeated_motif(longer)) == [15]


def test_short_melody_has_no_motif():
    melody = mel("C4 D4 E4 F4")
    assert not notes_in_motif(melody).any()
    assert not notes_in_repeated_motif(melody).any()


# -------------------------------------------------------------- autocorrelation
def test_autocorrelation_of_alternating_notes():
    melody = mel(" ".join(["C4 E4"] * 32))  # 64 steps: x = +-d
    assert autocorrelation(melody, 1) == pytest.approx(-63 / 64)
    assert autocorrelation(melody, 2) == pytest.approx(62 / 64)
    assert autocorrelation(melody, 3) == pytest.approx(-61 / 64)


def test_autocorrelation_of_a_constant_interval_ramp():
    n = 37
    ramp = list(range(2, 2 + n))  # chromatic scale C3..C6: constant interval of 1
    mean = (n - 1) / 2
    variance = (n * n - 1) / 12
    for lag in (1, 2, 3):
        expected = sum((i - mean) * (i + lag - mean) for i in range(n - lag)) / n / variance
        assert autocorrelation(ramp, lag) == pytest.approx(expected)


def test_autocorrelation_of_constant_melody_is_nan_and_skipped_in_mean():
    constant = mel("C4 C4 C4 C4")
    alternating = mel(" ".join(["C4 E4"] * 32))
    assert math.isnan(autocorrelation(constant, 1))
    metrics = compute_music_metrics([constant, alternating])
    assert metrics.autocorrelation_1 == pytest.approx(-63 / 64)
    assert math.isnan(compute_music_metrics([constant]).autocorrelation_2)


def test_autocorrelation_rejects_bad_lag():
    with pytest.raises(ValueError, match="lag"):
        autocorrelation(mel("C4 D4"), 0)


# --------------------------------------------------------------------- the API
def test_rule_functions_accept_tokens_as_well_as_melodies():
    melody = mel("C4 - A4 - G4 - F4 - E4 - D4 - C4 - F#4 C4 C4 C4 C4 C4 C4")
    tokens = melody.tokens.tolist()
    for rule in (
        excessive_repeats,
        notes_not_in_key,
        leap_resolutions,
        notes_in_motif,
        notes_in_repeated_motif,
    ):
        assert np.array_equal(rule(melody), rule(tokens))
        assert np.array_equal(rule(melody), rule(np.asarray(tokens)))
    for predicate in (starts_with_tonic, unique_highest_note, unique_lowest_note):
        assert predicate(melody) == predicate(tokens)
    assert not excessive_repeats([]).any()


def test_rule_functions_reject_bad_tokens():
    with pytest.raises(ValueError):
        notes_not_in_key([0, 1, 99])
    with pytest.raises(ValueError):
        excessive_repeats([[2, 3]])


def test_empty_input_raises():
    with pytest.raises(ValueError, match="at least one melody"):
        compute_music_metrics([])


def test_accepts_any_iterable_and_counts():
    melodies = [mel("C4 - D4 r"), mel("E4 - - -")]
    metrics = compute_music_metrics(m for m in melodies)
    assert (metrics.num_melodies, metrics.num_steps, metrics.num_notes) == (2, 8, 3)


def test_as_dict_has_every_field_as_float():
    metrics = compute_music_metrics([mel("C4 - D4 - E4 - F4 - G4 -")])
    data = metrics.as_dict()
    assert list(data) == [f.name for f in fields(MusicMetrics)]
    assert all(isinstance(value, float) for value in data.values())


def test_metric_labels_cover_the_metric_fields_in_order():
    names = [f.name for f in fields(MusicMetrics)]
    assert names[: len(METRIC_LABELS)] == list(METRIC_LABELS)
    assert all(name.startswith("num_") for name in names[len(METRIC_LABELS) :])


def test_format_metrics_table():
    rng = np.random.default_rng(0)
    columns = {
        "corpus": compute_music_metrics([mel("C4 - A4 - G4 - F4 - E4 - D4 - C4 -")]),
        "prior": compute_music_metrics([mel(" ".join(["C4"] * 10))]),
        "random": compute_music_metrics([random_melody(rng) for _ in range(20)]),
    }
    table = format_metrics_table(columns)
    for label in METRIC_LABELS.values():
        assert label in table
    header = table.splitlines()[0]
    for name in columns:
        assert name in header
    repeated_row = next(line for line in table.splitlines() if "excessively" in line)
    assert "50.0%" in repeated_row.split()
    lag_row = next(
        line for line in table.splitlines() if line.startswith("Mean autocorrelation, lag 1")
    )
    values = lag_row.split()[-3:]
    assert all(v == "n/a" or len(v.split(".")[1]) == 3 for v in values)
    assert "n/a" in next(line for line in table.splitlines() if line.startswith("Leaps resolved"))
    with pytest.raises(ValueError):
        format_metrics_table({})


def test_format_metrics_table_extra_rows_come_last():
    columns = {"a": compute_music_metrics([mel("C4 D4")]), "b": compute_music_metrics([mel("E4")])}
    table = format_metrics_table(
        columns, extra_rows={"Prior log-likelihood / step": ["-1.234", "-2.5"]}
    )
    last = table.splitlines()[-1].split()
    assert last[-2:] == ["-1.234", "-2.5"]
    assert table.splitlines()[-1].startswith("Prior log-likelihood / step")
    with pytest.raises(ValueError, match="cells"):
        format_metrics_table(columns, extra_rows={"bad": ["1"]})


# ------------------------------------------- agreement with RL Tuner step by step
class _RLTunerReplay:
    """RL Tuner's stateful detectors, fed one action at a time as in
    ``rl_tuner_eval_metrics.compose_and_evaluate_piece`` (a test oracle written
    after ``rl_tuner.py``; C major by token list, tonic = middle C)."""

    KEY = {0, 1, 2, 4, 6, 7, 9, 11, 13, 14, 16, 18, 19, 21, 23, 25, 26, 28, 30, 31, 33, 35, 37, 38}

    def __init__(self):
        self.composition: list[int] = []
        self.direction = 0
        self.leapt_from: int | None = None
        self.steps_since_last_leap = 0

    def repeating(self, action: int) -> bool:
        count, held, breaks = 0, False, False
        for previous in reversed(self.composition):
            if previous == action:
                count += 1
            elif previous == 0:
                breaks = True
            elif previous == 1:
                held = True
            else:
                break
        if action == 0 and count > 1:
            return True
        if not held and not breaks:
            return count > 4
        return count > 6

    def interval(self, action: int) -> tuple[float, int]:
        if not self.composition:
            return 0, -1
        notes = [t for t in self.composition if t > 1]
        if not notes:
            return 0, -1
        previous = notes[-1]
        if action <= 1:
            return -1, previous
        step = abs(action - previous)
        if step == 7 and previous in (2, 14, 26, 38, 9, 21, 33):
            return -5, previous  # IN_KEY_FIFTH
        if step == 4 and previous in (2, 14, 26, 38, 6, 18, 30):
            return -3, previous  # IN_KEY_THIRD
        return step, previous

    def leap(self, action: int) -> int:
        if not self.composition:
            return 0
        interval, previous = self.interval(action)
        if action <= 1:
            self.steps_since_last_leap += 1
            return 0
        outcome = 0
        if interval >= 7 or interval == -5:
            direction = 1 if action > previous else -1
            if self.direction != 0:
                if self.direction != direction:
                    if self.steps_since_last_leap > 6:
                        outcome = 1
                    self.direction, self.leapt_from = 0, None
                else:
                    outcome = -1
            else:
                self.direction, self.leapt_from = direction, previous
            self.steps_since_last_leap = 0
        else:
            self.steps_since_last_leap += 1
            if (self.direction == 1 and action <= self.leapt_from) or (
                self.direction == -1 and action >= self.leapt_from
            ):
                outcome = 1
                self.direction, self.leapt_from = 0, None
        return outcome

    @staticmethod
    def last_motif(composition: list[int]) -> list[int] | None:
        if len(composition) < 8:
            return None
        bar = composition[-8:]
        return bar if len({a for a in bar if a > 1}) >= 3 else None

    def repeated_motif(self, action: int) -> bool:
        composition = self.composition + [action]
        motif = self.last_motif(composition)
        if motif is None:
            return False
        previous = self.composition[:-7]
        return any(previous[i : i + 8] == motif for i in range(len(previous) - 7))

    def run(self, tokens: list[int]) -> dict[str, list]:
        stats: dict[str, list] = {"repeat": [], "out": [], "leap": [], "motif": [], "rmotif": []}
        for action in tokens:
            stats["out"].append(action not in self.KEY)
            stats["repeat"].append(self.repeating(action))
            stats["motif"].append(self.last_motif(self.composition + [action]) is not None)
            stats["rmotif"].append(self.repeated_motif(action))
            stats["leap"].append(self.leap(action))
            self.composition.append(action)
        return stats


def _folk_like(rng: np.random.Generator, num_steps: int = 64) -> Melody:
    """A random walk on the C-major scale with quarter/eighth/half notes, some rests,
    leaps and repeated bars, so every rule fires now and then."""
    scale = [48, 50, 52, 53, 55, 57, 59, 60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83]
    degree = int(rng.integers(5, 12))
    bar: list[int] = []
    while len(bar) < 16:
        degree = int(np.clip(degree + rng.choice([-4, -2, -1, 0, 1, 2, 5]), 0, len(scale) - 1))
        length = int(rng.choice([1, 2, 2, 4, 4, 6, 8]))
        pitch = scale[degree] + (1 if rng.random() < 0.05 else 0)
        head = REST if rng.random() < 0.08 else pitch_token(pitch)
        bar += [head] + [HOLD] * (length - 1)
    tokens: list[int] = []
    while len(tokens) < num_steps:
        tokens += bar if rng.random() < 0.5 else [int(t) for t in random_melody(rng, 16).tokens]
    return Melody.from_tokens(tokens[:num_steps])


@pytest.mark.parametrize("seed", range(3))
def test_rules_agree_with_a_step_by_step_rl_tuner_replay(seed):
    rng = np.random.default_rng(seed)
    melodies = [_folk_like(rng) for _ in range(60)] + [random_melody(rng, 48) for _ in range(20)]
    melodies.append(mel(" ".join(["C4"] * 12 + ["-"] * 9 + ["r"] * 4 + ["G4 C5 E5 r D4"])))
    for melody in melodies:
        tokens = melody.tokens.tolist()
        expected = _RLTunerReplay().run(tokens)
        assert excessive_repeats(melody).tolist() == expected["repeat"]
        assert notes_not_in_key(melody).tolist() == expected["out"]
        assert leap_resolutions(melody).tolist() == expected["leap"]
        assert notes_in_motif(melody).tolist() == expected["motif"]
        assert notes_in_repeated_motif(melody).tolist() == expected["rmotif"]
        if any(t > 1 for t in tokens):
            top, bottom = max(tokens), min(t for t in tokens if t > 1)
            assert unique_highest_note(melody) == (tokens.count(top) == 1)
            assert unique_lowest_note(melody) == (tokens.count(bottom) == 1)
        for lag in (1, 2, 3):
            signal = np.asarray(tokens, dtype=float)
            x = signal - signal.mean()
            with np.errstate(invalid="ignore", divide="ignore"):
                reference = (x[lag:] * x[:-lag]).sum() / len(signal) / np.var(signal)
            actual = autocorrelation(melody, lag)
            assert (math.isnan(actual) and math.isnan(reference)) or actual == pytest.approx(
                reference
            )
