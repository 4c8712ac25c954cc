"""The panel of simulated listeners: pinned members, the split, diversity, boredom, loading."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from rlcomposer.music.melody import Melody, pitch_token
from rlcomposer.preferences import panel as P
from rlcomposer.preferences.listeners import (
    BUILTIN_LISTENERS,
    ListenerError,
    ListenerNoise,
    SimulatedListener,
    load_listener,
)
from rlcomposer.preferences.panel import (
    CHOOSE_MEMBERS,
    FEATURE_NAMES,
    METRE_MEMBERS,
    ORIGINAL_MEMBERS,
    PANEL_SEED,
    PANEL_SIZE,
    REPORT_MEMBERS,
    features,
    panel,
    panel_listener,
    panel_scores,
    reference_features,
    reference_tokens,
)


def quarter_notes(pitches: list[int], steps: int = 64) -> np.ndarray:
    tokens = []
    for i in range(steps // 4):
        tokens += [pitch_token(pitches[i % len(pitches)]), 1, 1, 1]
    return np.array(tokens)


COLLAPSED = {
    "C5 quarter notes for 4 bars": quarter_notes([72]),
    "C5 D5 alternating": quarter_notes([72, 74]),
    "one held C5": np.array([pitch_token(72)] + [1] * 63),
}


# ------------------------------------------------------------------ the recipe
def test_split_is_fixed_disjoint_and_covers_the_panel():
    assert PANEL_SIZE == 36 and PANEL_SEED == 20250611
    assert ORIGINAL_MEMBERS == tuple(range(24)) and METRE_MEMBERS == tuple(range(24, 36))
    assert CHOOSE_MEMBERS == tuple(range(12)) + tuple(range(24, 36, 2))
    assert REPORT_MEMBERS == tuple(range(12, 24)) + tuple(range(25, 36, 2))
    assert not set(CHOOSE_MEMBERS) & set(REPORT_MEMBERS)
    assert set(CHOOSE_MEMBERS) | set(REPORT_MEMBERS) == set(range(PANEL_SIZE))
    assert len(CHOOSE_MEMBERS) == len(REPORT_MEMBERS)


PINNED_WEIGHTS = {
    0: [0.0602, 0.0062, 0.0145, 0.0033, 0.0769, 0.1526, 0.0435, 0.0171, 0.0024, 0.0105, 0.0006, 0.0353,
        0.0078, 0.0692, 0.0041, 0.0356, 0.0252, 0.0005, 0.2526, 0.0045, 0.0096, 0.0838, 0.0273, 0.0566],
    7: [0.1048, 0.0181, 0.0003, 0.0782, 0.0929, 0.0237, 0.1319, 0.0112, 0.0576, 0.0575, 0.0008, 0.1347,
        0.0003, 0.0517, 0.0115, 0.0602, 0.0023, 0.0013, 0.0292, 0.0022, 0.0383, 0.0326, 0.0485, 0.0101],
    19: [0.0493, 0.101, 0.0007, 0.0163, 0.0393, 0.1082, 0.0005, 0.0182, 0.0144, 0.2076, 0.0071, 0.1151,
         0.0076, 0.0392, 0.069, 0.0343, 0.0326, 0.0101, 0.0002, 0.0199, 0.0288, 0.0327, 0.0166, 0.0313],
}
PINNED_FEATURES = ("mean_interval", "register", "mean_duration", "leaps", "cadence")
PINNED_IDEALS = {  # ideal (or threshold) values and kinds (0 band, 1 at least, -1 at most)
    0: ([2.3073, 69.1354, 0.7214, 0.1291, 0.5], [0, 0, 0, 0, 0]),
    7: ([1.9567, 72.1898, 0.4907, 0.2185, 1.0], [0, 0, -1, 0, 0]),
    19: ([3.0138, 72.9693, 0.4728, 0.2586, 1.0], [1, 0, -1, 1, 0]),
}
PINNED_INTERACTIONS = {
    0: ("leaps are fine if they resolve", "low and stepwise"),
    7: ("long notes with a cadence", "low and stepwise", "chromatic notes approached by step"),
    19: ("leaps are fine if they resolve", "busy phrases separated by rests"),
}


@pytest.mark.parametrize("k", sorted(PINNED_WEIGHTS))
def test_members_are_pinned(k):
    """The panel must not drift to suit a method: these values change only on purpose."""
    member = panel_listener(k)
    assert member.name == f"panel:{k}"
    assert np.round(member.weights, 4).tolist() == PINNED_WEIGHTS[k]
    assert math.isclose(member.weights.sum(), 1.0)
    index = [FEATURE_NAMES.index(name) for name in PINNED_FEATURES]
    ideals, kinds = PINNED_IDEALS[k]
    assert np.round(member.ideals[index], 4).tolist() == ideals
    assert member.kinds[index].tolist() == kinds
    assert member.interaction_names == PINNED_INTERACTIONS[k]


def test_feature_bank_and_members_are_well_formed():
    assert len(FEATURE_NAMES) >= 15 and len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    for member in panel(ORIGINAL_MEMBERS):
        assert member.weights.shape == (len(FEATURE_NAMES),) and np.all(member.weights >= 0)
        assert set(member.kinds.tolist()) <= {P.BAND, P.AT_LEAST, P.AT_MOST}
        assert np.all(member.tolerances > 0)
        assert 2 <= len(member.interactions) <= 3
        assert 0.0 <= member.recipe_distance <= 1.0 and member.distance >= 0


def test_reference_is_shipped_and_scores_are_standardised_on_it():
    tokens = reference_tokens()
    assert tokens.shape == (2000, 64) and tokens.min() >= 0 and tokens.max() < 39
    values = reference_features()
    for member in panel(ORIGINAL_MEMBERS):
        taste = member.score_features(values)  # without boredom
        assert abs(taste.mean()) < 1e-9 and abs(taste.std() - 1.0) < 1e-9


# ------------------------------------------------------------------ diversity
def _reference_pairs(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, 2000, (2, n))
    keep = i != j
    return i[keep], j[keep]


def test_members_disagree_a_fair_share_of_the_time():
    scores = panel_scores(reference_tokens())
    i, j = _reference_pairs()
    sign = np.sign(scores[i] - scores[j])
    agreement = (sign[:, :, None] == sign[:, None, :]).mean(axis=0)[np.triu_indices(PANEL_SIZE, 1)]
    assert agreement.mean() < 0.7  # on average, two members disagree on >30% of prior pairs
    assert agreement.min() < 0.5  # some pairs of members have opposite tastes
    assert agreement.max() < 0.9  # no two members are copies


def test_members_span_tastes_near_to_and_far_from_the_prior():
    for half in (CHOOSE_MEMBERS, REPORT_MEMBERS):
        distances = [panel_listener(k).distance for k in half]
        assert min(distances) < 0.2 and max(distances) > 0.7
    # the prior's typical melody: the reference melody nearest the medians of every feature
    values = reference_features()
    ranks = np.stack([np.searchsorted(np.sort(values[:, f]), values[:, f], side="left")
                      + np.searchsorted(np.sort(values[:, f]), values[:, f], side="right")
                      for f in range(values.shape[1])], axis=1) / (2 * len(values))
    typical = int(np.argmin(((ranks - 0.5) ** 2).sum(axis=1)))
    percentile = []
    for member in panel(ORIGINAL_MEMBERS):
        taste = member.score_features(values)
        percentile.append(np.mean(taste < taste[typical]))
    assert max(percentile) > 0.9  # near members love it
    assert min(percentile) < 0.5  # and some members do not put it in their top half


def test_members_are_not_linear_in_their_own_features():
    values = reference_features()
    design = np.column_stack([values, np.ones(len(values))])
    explained = []
    for member in panel(ORIGINAL_MEMBERS):
        taste = member.score_features(values)
        coefficients, *_ = np.linalg.lstsq(design, taste, rcond=None)
        explained.append(1 - np.mean((design @ coefficients - taste) ** 2) / taste.var())
    assert max(explained) < 0.9 and min(explained) < 0.6


def test_members_have_learnable_tastes():
    """Best-of-16 prior melodies, by a member's own score, beat plain prior melodies."""
    tokens = reference_tokens()
    for k in CHOOSE_MEMBERS[:3]:
        scores = panel_listener(k).score_tokens(tokens)
        best = scores[:1600].reshape(100, 16).max(axis=1)
        plain = scores[1600:]
        assert np.mean(best[:, None] > plain[None, :]) > 0.8


# ------------------------------------------------------------------ boredom
EVERY_LISTENER = [*BUILTIN_LISTENERS, *(f"panel:{k}" for k in range(PANEL_SIZE))]


@pytest.mark.parametrize("spec", EVERY_LISTENER)
def test_collapsed_melodies_lose_to_the_median_prior_melody(spec):
    listener, _ = load_listener(spec)
    prior = reference_tokens()[:400]
    if hasattr(listener, "score_tokens"):
        scores = listener.score_tokens(prior)
    else:
        scores = np.array([listener(Melody(t)) for t in prior])
    median = float(np.median(scores))
    for what, tokens in COLLAPSED.items():
        assert listener(Melody(tokens)) < median - 1.0, f"{spec} likes {what}"


def test_boredom_barely_touches_prior_melodies():
    scores = panel_scores(reference_tokens(), ORIGINAL_MEMBERS)
    tastes = np.stack([m.score_features(reference_features()) for m in panel(ORIGINAL_MEMBERS)], axis=1)
    untouched = np.all(scores == tastes, axis=1)
    assert untouched.mean() > 0.9


# ------------------------------------------------------------------ features
def _slow_features(tokens: np.ndarray) -> dict[str, float]:
    """A few features from Melody.notes(), written plainly, to check the vectorised bank."""
    notes = Melody(tokens).notes()
    pitches = [p for p, _, _ in notes]
    onsets = [round(o * 4) for _, o, _ in notes]
    lengths = [round(d * 4) for _, _, d in notes]
    intervals = np.diff(pitches)
    leaps = [(a, b) for a, b in zip(intervals[:-1], intervals[1:], strict=True) if abs(a) >= 5]
    cells = [tuple(intervals[j:j + 3]) + tuple(lengths[j:j + 3]) for j in range(len(pitches) - 3)]
    return {
        "mean_interval": float(np.abs(intervals).mean()),
        "steps": float(np.mean((np.abs(intervals) >= 1) & (np.abs(intervals) <= 2))),
        "leap_resolution": (sum(1 <= abs(b) <= 2 and np.sign(b) == -np.sign(a) for a, b in leaps) / len(leaps)
                            if leaps else 1.0),
        "range": float(max(pitches) - min(pitches)),
        "mean_duration": float(np.mean(lengths)) / 4,
        "syncopation": float(np.mean([o % 4 != 0 and o % 4 + d > 4 for o, d in zip(onsets, lengths, strict=True)])),
        "rests": 1 - sum(lengths) / len(tokens),
        "cadence": {0: 1.0, 9: 1.0, 4: 0.5, 7: 0.5}.get(pitches[-1] % 12, 0.0),
        "climax_position": onsets[int(np.argmax(pitches))] / len(tokens),
        "motif_repetition": float(np.mean([cells.count(c) > 1 for c in cells])) if cells else 0.0,
        "pitch_classes": float(len({p % 12 for p in pitches})),
    }


def test_vectorised_features_match_a_plain_implementation():
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random((60, 64)) < 0.6, 1, rng.integers(2, 39, (60, 64)))
    noisy[:, 0] = rng.integers(2, 39, 60)
    tokens = np.vstack([reference_tokens()[:120], noisy])
    values = features(tokens)
    for row, melody_tokens in zip(values, tokens, strict=True):
        for name, expected in _slow_features(melody_tokens).items():
            assert row[FEATURE_NAMES.index(name)] == pytest.approx(expected, abs=1e-9), name


def test_degenerate_and_other_lengths_score_finite():
    for tokens in ([0] * 64, [1] * 64, [pitch_token(60)] + [1] * 63, [pitch_token(60)], [0, 1, pitch_token(62)]):
        values = features(np.array(tokens))
        assert values.shape == (1, len(FEATURE_NAMES)) and np.all(np.isfinite(values))
        assert np.isfinite(panel_listener(5)(Melody(np.array(tokens))))
    short = reference_tokens()[:20, :32]
    assert np.all(np.isfinite(panel_listener(5).score_tokens(short)))


# ------------------------------------------------------------------ the API
def test_call_batch_and_tokens_agree_and_members_pickle():
    member = panel_listener(3)
    tokens = reference_tokens()[:50]
    melodies = [Melody(t) for t in tokens] + [Melody(tokens[0, :48])]
    batch = member.score_batch(melodies)
    assert np.allclose(batch[:50], member.score_tokens(tokens))
    assert np.allclose(batch, [member(m) for m in melodies])
    assert np.allclose(panel_scores(tokens, [3, 4])[:, 0], batch[:50])
    copy = pickle.loads(pickle.dumps(member))
    assert copy.name == "panel:3" and np.allclose(copy.score_tokens(tokens), batch[:50])


def test_load_listener_gives_panel_members():
    member, name = load_listener("panel:7")
    assert member is panel_listener(7) and name == "panel:7"
    listener = SimulatedListener(member, name, ListenerNoise(), rng=0)
    spread = listener.calibrate([Melody(t) for t in reference_tokens()[:300]])
    assert listener.rater_name == "sim:panel:7" and 0.7 < spread < 1.3


@pytest.mark.parametrize("spec", ["panel:36", "panel:-1", "panel:x", "panel:1.5", "panel:", "panel:99"])
def test_bad_panel_member_is_a_one_line_error(spec):
    with pytest.raises(ListenerError, match=r"0\.\.35") as error:
        load_listener(spec)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("k", [36, -1, 1.5, True, "3"])
def test_panel_listener_refuses_bad_indices(k):
    with pytest.raises(ListenerError, match=r"0\.\.35"):
        panel_listener(k)
