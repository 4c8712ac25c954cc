"""Simulated listeners: built-in tastes, noise, loading, and rating through the store."""

from __future__ import annotations

import numpy as np
import pytest

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.simulated_raters import simulate_ratings
from rlcomposer.music.melody import Melody, pitch_token
from rlcomposer.preferences.listeners import (
    BUILTIN_LISTENERS,
    ListenerError,
    ListenerNoise,
    SimulatedListener,
    adventurous,
    boredom,
    load_listener,
    lyrical,
    note_grid,
)


def prior_like_melodies(n: int = 300, seed: int = 0) -> list[Melody]:
    """Melodies with musical structure (scale steps, varied rhythm), cheap to make."""
    rng = np.random.default_rng(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    result = []
    for _ in range(n):
        tokens, step, degree = [], 0, int(rng.integers(0, 8))
        leapiness = rng.random()
        while step < 64:
            duration = int(rng.choice([1, 2, 4, 8], p=[0.2, 0.4, 0.3, 0.1]))
            duration = min(duration, 64 - step)
            move = int(rng.integers(-5, 6)) if rng.random() < leapiness else int(rng.integers(-1, 2))
            degree = int(np.clip(degree + move, 0, 7))
            pitch = scale[degree] + (1 if rng.random() < 0.05 else 0)
            tokens += [pitch_token(pitch)] + [1] * (duration - 1)
            step += duration
        result.append(Melody(np.array(tokens)))
    return result


def test_builtins_have_spread_and_different_tastes():
    melodies = prior_like_melodies()
    scores = {name: np.array([fn(m) for m in melodies]) for name, fn in BUILTIN_LISTENERS.items()}
    for name, values in scores.items():
        assert np.all(np.isfinite(values)), name
        assert values.std() > 0.05, name
        assert len(np.unique(values.round(6))) > 50, name
    lively = np.array([boredom(m) == 0 for m in melodies])  # boredom is shared, not a taste
    assert lively.sum() > 150
    corr = np.corrcoef(scores["lyrical"][lively], scores["adventurous"][lively])[0, 1]
    assert corr < 0.5  # different tastes


def test_adventurous_likes_leaps_and_chromatic_notes():
    calm = Melody.from_notes([(60 + (i % 3), i, 1) for i in range(16)], 64)
    wild = Melody.from_notes([(60 + (i * 7) % 24 + (i % 2), i, 1) for i in range(16)], 64)
    assert adventurous(wild) > adventurous(calm)
    assert lyrical(calm) > lyrical(wild)


def test_degenerate_melodies_score_finite():
    for tokens in ([0] * 64, [1] * 64, [pitch_token(60)] + [1] * 63):
        for fn in BUILTIN_LISTENERS.values():
            assert np.isfinite(fn(Melody(np.array(tokens))))


def calibrated(fn=lyrical, noise=None, seed=0, melodies=None):
    listener = SimulatedListener(fn, fn.__name__, noise or ListenerNoise(), rng=np.random.default_rng(seed))
    listener.calibrate(melodies or prior_like_melodies(200, seed=1))
    return listener


def agreement(listener, melodies, n=600, seed=3):
    rng = np.random.default_rng(seed)
    agree = 0
    for _ in range(n):
        i, j = rng.choice(len(melodies), 2, replace=False)
        answer = listener.compare(melodies[i], melodies[j])
        truth = listener.prefers(melodies[i], melodies[j])
        agree += {"a": 1.0, "b": 0.0, "tie": 0.5}[answer] == truth
    return agree / n


def test_noiseless_settings_agree_with_preference():
    melodies = prior_like_melodies(200, seed=2)
    listener = calibrated(noise=ListenerNoise(temperature=1e-6, mistake_rate=0.0))
    assert agreement(listener, melodies) == 1.0


def test_default_noise_is_noisy_but_informative():
    melodies = prior_like_melodies(200, seed=2)
    rate = agreement(calibrated(), melodies)
    assert 0.6 < rate < 0.95


def test_rater_name_ties_stars_and_prefers():
    listener = calibrated()
    assert listener.rater_name == "sim:lyrical"
    melodies = prior_like_melodies(50, seed=4)
    assert listener.prefers(melodies[0], melodies[0]) == 0.5
    stars = [listener.stars(m) for m in melodies]
    assert set(stars) <= {1, 2, 3, 4, 5} and len(set(stars)) >= 3
    exact = SimulatedListener(lyrical, "lyrical", ListenerNoise(mistake_rate=0.0, tie_band=0.5, temperature=0))
    exact.calibrate(melodies)
    a, b = melodies[0], melodies[1]
    close = abs(lyrical(a) - lyrical(b)) < 0.5 * exact.spread
    assert (exact.compare(a, b) == "tie") == close


def test_noiseless_listener_ties_a_melody_with_itself():
    melodies = prior_like_melodies(50, seed=4)
    exact = calibrated(noise=ListenerNoise(mistake_rate=0.0, temperature=0.0))
    for melody in melodies[:20]:
        assert exact.compare(melody, melody) == "tie"
    a, b = sorted(melodies[:2], key=lyrical)
    if abs(lyrical(b) - lyrical(a)) >= exact.noise.tie_band * exact.spread:
        assert exact.compare(b, a) == "a" and exact.compare(a, b) == "b"


def _first_token(melody):
    return float(melody.tokens[0])


@pytest.mark.parametrize("mistake_rate", [0.1, 0.4])
def test_answer_shares_match_the_mistake_rate(mistake_rate):
    """A mistake is a coin flip: against itself a melody gets a/b each mistake_rate/2 of the time;
    for a clear pair (temperature 0) the wrong answer comes mistake_rate/2 of the time."""
    n = 4000
    noisy = SimulatedListener(_first_token, "first", ListenerNoise(mistake_rate=mistake_rate, temperature=0.0),
                              rng=7, spread=1.0)
    low, high = Melody(np.array([pitch_token(60)] + [1] * 15)), Melody(np.array([pitch_token(72)] + [1] * 15))
    tolerance = 4 * np.sqrt(0.25 / n)  # four standard errors
    answers = [noisy.compare(low, low) for _ in range(n)]
    assert abs(answers.count("tie") / n - (1 - mistake_rate)) < tolerance
    assert abs(answers.count("a") / n - mistake_rate / 2) < tolerance
    assert abs(answers.count("b") / n - mistake_rate / 2) < tolerance
    answers = [noisy.compare(high, low) for _ in range(n)]
    assert answers.count("tie") == 0
    assert abs(answers.count("b") / n - mistake_rate / 2) < tolerance


def quarters(pitches, bars=4):
    return Melody(np.array([t for i in range(4 * bars) for t in (pitch_token(pitches[i % len(pitches)]), 1, 1, 1)]))


def test_boredom_penalises_collapsed_melodies_only():
    assert boredom(quarters([72])) == pytest.approx(1.5 * 11 + 10 + 20 + 15 + 8)  # run, share, pitches, range, shape
    assert boredom(quarters([72, 74])) == pytest.approx(10 + 5)  # two pitches, range 2
    assert boredom(quarters([60, 62, 64, 65, 67, 65, 64, 62])) == 0
    assert boredom(quarters(list(range(60, 76)))) == 8  # one long climb: no change of direction
    assert boredom(Melody(np.array([pitch_token(72)] + [1] * 63))) > 40
    assert boredom(Melody(np.zeros(64, dtype=int))) > 40
    lively = [m for m in prior_like_melodies(300) if boredom(m) == 0]
    assert len(lively) > 200


def test_boredom_vectorised_matches_one_by_one():
    rng = np.random.default_rng(0)
    tokens = np.where(rng.random((300, 64)) < 0.5, 1, rng.integers(0, 39, (300, 64)))
    tokens[:100] = np.where(rng.random((100, 64)) < 0.7, 1, rng.integers(26, 29, (100, 64)))  # few pitches
    tokens = np.vstack([tokens, [m.tokens for m in prior_like_melodies(100)]])
    assert np.allclose(boredom(tokens), [boredom(Melody(t)) for t in tokens])


def test_note_grid_matches_melody_notes():
    rng = np.random.default_rng(1)
    tokens = np.where(rng.random((50, 64)) < 0.5, 1, rng.integers(0, 39, (50, 64)))
    grid = note_grid(tokens)
    for i, row in enumerate(tokens):
        notes = Melody(row).notes()
        assert grid.count[i] == len(notes)
        got = [(int(p), o / 4, d / 4) for p, o, d in zip(grid.pitch[i], grid.onset[i], grid.duration[i], strict=True)]
        assert got[:len(notes)] == [(p, o, d) for p, o, d in notes]
        assert grid.silent[i].sum() == 64 - grid.duration[i, grid.valid[i]].sum()


def test_calibration_spread_ignores_collapsed_reference_melodies():
    melodies = prior_like_melodies(200, seed=1)
    lively = [m for m in melodies if boredom(m) == 0]
    plain = calibrated(melodies=lively)
    spoiled = calibrated(melodies=lively + [quarters([72])] * 10 + [quarters([72, 74])] * 10)
    assert spoiled.spread == pytest.approx(plain.spread)
    assert spoiled.star_edges[0] < plain.star_edges[0]  # the collapsed ones still get the fewest stars


class CountingListener:
    def __init__(self):
        self.batches = 0

    def __call__(self, melody):
        return float(melody.tokens.sum())

    def score_batch(self, melodies):
        self.batches += 1
        return np.array([self(m) for m in melodies])


def test_scores_use_score_batch():
    counting = CountingListener()
    listener = SimulatedListener(counting, "counting", spread=1.0)
    melodies = prior_like_melodies(20)
    assert np.allclose(listener.scores(melodies), [counting(m) for m in melodies])
    assert counting.batches == 1


def test_uncalibrated_listener_refuses():
    listener = SimulatedListener(lyrical, "lyrical")
    melodies = prior_like_melodies(2)
    with pytest.raises(ListenerError, match="not calibrated"):
        listener.compare(*melodies)
    assert SimulatedListener(lyrical, "lyrical", spread=1.0).prefers(*melodies) in (0.0, 0.5, 1.0)


def _raises(melody):
    raise ValueError("boom")


def _nan(melody):
    return float("nan")


def test_failing_listener_names_the_melody():
    melody = prior_like_melodies(1)[0].with_metadata(melody_id=42)
    for fn, what in ((_raises, "raised ValueError"), (_nan, "returned nan")):
        listener = SimulatedListener(fn, fn.__name__, spread=1.0)
        with pytest.raises(ListenerError, match=f"{what}.*melody id 42"):
            listener.compare(melody, melody)


def test_bad_noise_is_refused():
    with pytest.raises(ListenerError):
        ListenerNoise(mistake_rate=1.5)
    with pytest.raises(ListenerError):
        ListenerNoise(temperature=-1)


def test_load_listener():
    assert load_listener("lyrical") == (lyrical, "lyrical")
    fn, name = load_listener("rlcomposer.preferences.listeners:adventurous")
    assert fn is adventurous and name == "adventurous"
    member, name = load_listener("panel:0")
    assert name == "panel:0" and member.name == "panel:0"
    for spec in ("nosuch.module:fn", "rlcomposer.preferences.listeners:nope", "plainword", "rlcomposer.preferences.listeners:CHOICES",
                 "panel:36", "panel:-3", "panel:one"):
        with pytest.raises(RLComposerError):
            load_listener(spec)


@pytest.fixture()
def store(tmp_path):
    from rlcomposer.feedback.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'ratings.sqlite3'}")
    store.add_melodies(prior_like_melodies(40, seed=5), "round0", model="test")
    store.add_melodies(prior_like_melodies(10, seed=6), "other", model="test")
    return store


def test_simulate_writes_through_the_store(store):
    listener = SimulatedListener(lyrical, "lyrical", rng=np.random.default_rng(0))
    counts = simulate_ratings(store, listener, pairs=25, stars=5, tag="round0", strategy=None, rng=1)
    assert counts["comparisons"] == 25 and counts["stars"] == 5
    assert counts["a"] + counts["b"] + counts["tie"] == 25
    rows = store.export_rows()
    assert len(rows) == 30
    assert {r["rater"] for r in rows} == {"sim:lyrical"} and {r["rater_kind"] for r in rows} == {"simulated"}
    assert {r["melody_tag"] for r in rows} == {"round0"}
    pairs = {frozenset((c.melody_a_id, c.melody_b_id)) for c in store.comparisons()}
    assert len(pairs) == 25  # never the same pair twice


def test_simulate_stops_when_exhausted(store):
    listener = SimulatedListener(lyrical, "lyrical", rng=np.random.default_rng(0))
    counts = simulate_ratings(store, listener, pairs=100, tag="other", strategy=None, rng=0)
    assert counts["comparisons"] == 45 and counts["exhausted"]
