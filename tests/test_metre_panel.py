"""Panel members 24-35: they hear each melody in its own metre, key and pick-up."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from rlcomposer.music.keys import Key
from rlcomposer.music.melody import HOLD, REST, Melody, pitch_token
from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener, load_listener
from rlcomposer.preferences.metre_panel import (
    METRE_CHOOSE_MEMBERS,
    METRE_FEATURE_NAMES,
    METRE_MEMBERS,
    METRE_REPORT_MEMBERS,
    family_features,
    family_reference,
    metre_features,
    metre_member,
)
from rlcomposer.preferences.panel import (
    CHOOSE_MEMBERS,
    REPORT_MEMBERS,
    panel_listener,
    panel_scores,
)


def feature(melody, name: str) -> float:
    return float(metre_features([melody])[0, METRE_FEATURE_NAMES.index(name)])


def line(figure: list[int], pitches: list[int], steps: int) -> np.ndarray:
    """Notes of the lengths in ``figure`` (repeated), on ``pitches`` (cycled), ``steps`` long."""
    tokens, index = [], 0
    while len(tokens) < steps:
        for length in figure:
            tokens += [pitch_token(pitches[index % len(pitches)])] + [HOLD] * (length - 1)
            index += 1
    return np.array(tokens[:steps])


JIG = line([4, 2], [67, 64, 65, 62, 64, 60, 62, 59, 60, 64, 67, 72], 96)  # quarter + eighth, 8 bars of 6/8
WALTZ = line([8, 4], [60, 64, 62, 65, 64, 67, 65, 62], 96)  # half + quarter, 8 bars of 3/4


def test_members_and_split():
    assert METRE_MEMBERS == tuple(range(24, 36))
    assert METRE_CHOOSE_MEMBERS == tuple(range(24, 36, 2)) and METRE_REPORT_MEMBERS == tuple(range(25, 36, 2))
    assert set(METRE_CHOOSE_MEMBERS) <= set(CHOOSE_MEMBERS) and set(METRE_REPORT_MEMBERS) <= set(REPORT_MEMBERS)
    signatures = [metre_member(k).signature for k in METRE_MEMBERS]
    for half in (METRE_CHOOSE_MEMBERS, METRE_REPORT_MEMBERS):  # each half has every signature twice
        names = [metre_member(k).signature for k in half]
        assert all(names.count(s) == 2 for s in set(signatures)) and len(set(names)) == 3
    for k in METRE_MEMBERS:
        member = panel_listener(k)
        assert member is metre_member(k) and member.name == f"panel:{k}"
        assert np.isclose(member.weights.sum(), 1.0) and np.all(member.weights >= 0)


PINNED = {  # signature, rounded recipe distance and the three largest weights: change only on purpose
    25: ("lilt", 0.04),
    29: ("syncopation", 0.49),
    33: ("downbeat_accent", 0.78),
}


@pytest.mark.parametrize("k", sorted(PINNED))
def test_members_are_pinned(k):
    member = metre_member(k)
    name, distance = PINNED[k]
    assert METRE_FEATURE_NAMES[int(np.argmax(member.weights))] == name
    assert round(member.recipe_distance, 2) == distance


@pytest.mark.parametrize("family", ["duple", "triple", "compound"])
def test_scores_are_standardised_on_each_familys_reference(family):
    values = family_features(family)
    melodies = list(family_reference(family))
    assert melodies[0].metre.family == family
    for k in METRE_MEMBERS:
        taste = metre_member(k).score_features(values, family)
        assert abs(taste.mean()) < 1e-9 and abs(taste.std() - 1.0) < 1e-9


def test_features_hear_the_metre_and_the_pickup():
    jig = Melody(JIG, metre="6/8")
    assert feature(jig, "lilt") == 1.0 and feature(jig, "syncopation") == 0.0
    assert feature(jig, "downbeat_onsets") == 1.0 and feature(jig, "beat_onsets") == 1.0
    # the same notes read as 4/4: a quarter-eighth figure that runs across the beats
    assert feature(JIG, "lilt") == 0.0 and feature(JIG, "syncopation") == 0.25
    # shifted by an eighth (a pick-up of an eighth): the long notes start off the beat
    shifted = Melody(JIG[:94], metre="6/8", pickup_steps=2)
    assert feature(shifted, "lilt") == 0.0 and feature(shifted, "syncopation") > 0.4
    # a pick-up of one beat keeps every figure on the beat
    assert feature(Melody(JIG[:90], metre="6/8", pickup_steps=6), "lilt") == 1.0
    waltz = Melody(WALTZ, metre="3/4")
    assert feature(waltz, "downbeat_accent") == pytest.approx(0.5)  # log2 8 - mean(log2 8, log2 4)
    assert feature(waltz, "downbeat_onsets") == 1.0 and feature(waltz, "bar_rhythm_repetition") == 1.0
    assert feature(waltz, "beat_notes") == 0.5  # the quarter on the third beat
    assert feature(Melody(WALTZ, metre="6/8"), "beat_notes") == 0.0  # in 6/8 it starts off the beat


def test_chord_tones_are_those_of_the_melodys_key():
    tokens = line([12], [62, 66, 69, 64], 48)  # D, F#, A, E on the downbeats of 3/4
    in_d = Melody(tokens, metre="3/4", key=Key("D", "major"))
    in_c = Melody(tokens, metre="3/4")
    assert feature(in_d, "downbeat_chord") == 0.75 and feature(in_c, "downbeat_chord") == 0.25  # E only
    assert feature(Melody(tokens, metre="3/4", key=Key("D", "minor")), "downbeat_chord") == 0.5  # D, A


def test_signature_tastes_prefer_their_figure():
    lilt_lover = next(metre_member(k) for k in METRE_REPORT_MEMBERS if "lilt" in metre_member(k).signature)
    straight = line([2], [67, 64, 65, 62, 64, 60, 62, 59, 60, 64, 67, 72], 96)  # running eighths
    assert lilt_lover(Melody(JIG, metre="6/8")) > lilt_lover(Melody(straight, metre="6/8"))
    syncopated = np.concatenate([[REST, HOLD], JIG[:94]])  # the jig an eighth late: against the beat
    for k in METRE_MEMBERS:
        member = metre_member(k)
        if "syncopation" in member.signature:
            assert member(Melody(JIG, metre="6/8")) > member(Melody(syncopated, metre="6/8"))


def test_batch_call_tokens_and_panel_scores_agree_and_members_pickle():
    member = metre_member(27)
    compound = list(family_reference("compound")[:30])
    mixed = compound + [Melody(JIG, metre="6/8"), Melody(WALTZ, metre="3/4"), Melody(WALTZ, metre="3/4",
                        pickup_steps=4), Melody(JIG)]
    batch = member.score_batch(mixed)
    assert np.allclose(batch, [member(m) for m in mixed])
    assert np.allclose(panel_scores(mixed, [27, 3])[:, 0], batch)
    assert member.score_tokens(JIG[None, :])[0] == pytest.approx(member(Melody(JIG)))
    assert member(Melody(WALTZ, metre="3/4")) != member(Melody(WALTZ, metre="3/4", pickup_steps=4))
    copy = pickle.loads(pickle.dumps(member))
    assert copy.name == "panel:27" and np.allclose(copy.score_batch(mixed), batch)


def test_load_listener_and_calibration_on_6_8():
    member, name = load_listener("panel:31")
    assert member is metre_member(31) and name == "panel:31"
    listener = SimulatedListener(member, name, ListenerNoise(), rng=0)
    spread = listener.calibrate(list(family_reference("compound")[:300]))
    assert 0.6 < spread < 1.4
    assert listener.compare(Melody(JIG, metre="6/8"), Melody(WALTZ, metre="6/8")) in ("a", "b", "tie")
