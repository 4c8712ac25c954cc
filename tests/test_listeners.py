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
    load_listener,
    lyrical,
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
    corr = np.corrcoef(scores["lyrical"], scores["adventurous"])[0, 1]
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
    assert listener.compare(melodies[0], melodies[0]) in ("tie", "a", "b")
    stars = [listener.stars(m) for m in melodies]
    assert set(stars) <= {1, 2, 3, 4, 5} and len(set(stars)) >= 3
    exact = SimulatedListener(lyrical, "lyrical", ListenerNoise(mistake_rate=0.0, tie_band=0.5, temperature=0))
    exact.calibrate(melodies)
    a, b = melodies[0], melodies[1]
    close = abs(lyrical(a) - lyrical(b)) < 0.5 * exact.spread
    assert (exact.compare(a, b) == "tie") == close


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
    for spec in ("nosuch.module:fn", "rlcomposer.preferences.listeners:nope", "plainword", "rlcomposer.preferences.listeners:CHOICES"):
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
