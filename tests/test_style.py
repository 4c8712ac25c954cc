"""Tests of the style overlap with the corpus and the collapse warnings (rlcomposer.music.style)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from rlcomposer.music.melody import Melody, pitch_token, random_melody
from rlcomposer.music.style import (
    COLLAPSE_THRESHOLDS,
    FEATURES,
    StyleReference,
    build_style_reference,
    collapse_warnings,
    default_reference_path,
    feature_histograms,
    histogram_overlap,
    load_style_reference,
    melody_patterns,
    save_style_reference,
    style_report,
)

N = 300


def collapsed_melodies(rng: np.random.Generator, count: int, num_steps: int = 64) -> list[Melody]:
    """A collapsed policy: one pitch (E4) in quarter notes, a few neighbours, eighths and rests."""
    melodies = []
    for _ in range(count):
        notes = []
        for quarter in range(num_steps // 4):
            if rng.random() < 0.05:
                continue
            pitch = 64 + (int(rng.choice([-2, -1, 1, 2])) if rng.random() < 0.1 else 0)
            if rng.random() < 0.1:
                notes += [(pitch, quarter, 0.5), (pitch, quarter + 0.5, 0.5)]
            else:
                notes.append((pitch, quarter, 1.0))
        melodies.append(Melody.from_notes(notes, num_steps))
    return melodies


@pytest.fixture(scope="module")
def two_prior_sets():
    from rlcomposer.prior.registry import resolve_model

    melodies = resolve_model("prior").sample(2 * N, 64, np.random.default_rng(0))
    return melodies[:N], melodies[N:]


@pytest.fixture(scope="module")
def prior_melodies(two_prior_sets):
    return two_prior_sets[0]


@pytest.fixture(scope="module")
def other_prior_melodies(two_prior_sets):
    return two_prior_sets[1]


@pytest.fixture(scope="module")
def collapsed():
    return collapsed_melodies(np.random.default_rng(0), N)


@pytest.fixture(scope="module")
def prior_report(prior_melodies):
    return style_report(prior_melodies)


@pytest.fixture(scope="module")
def collapsed_report(collapsed, prior_melodies):
    return style_report(collapsed, baseline=prior_melodies)


# ----------------------------------------------------------------- histograms
def test_histogram_overlap_is_symmetric_and_in_unit_interval():
    rng = np.random.default_rng(0)
    for _ in range(50):
        size = int(rng.integers(1, 30))
        p = rng.random(size) * (rng.random(size) < 0.7)
        q = rng.random(size) * (rng.random(size) < 0.7)
        forward, backward = histogram_overlap(p, q), histogram_overlap(q, p)
        assert forward == pytest.approx(backward)
        assert 0.0 <= forward <= 1.0
    assert histogram_overlap([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)  # counts are normalised
    assert histogram_overlap([1, 0], [0, 1]) == 0.0
    assert histogram_overlap([0, 0], [1, 1]) == 0.0  # nothing to compare: no overlap
    with pytest.raises(ValueError):
        histogram_overlap([1, 2], [1, 2, 3])


def test_features_of_a_small_melody():
    # C4 quarter, E4 eighth, rest eighth, C4 half; then a bar of G4 whole note
    melody = Melody.from_notes([(60, 0, 1), (64, 1, 0.5), (60, 2, 2), (67, 4, 4)], 32)
    histograms = feature_histograms([melody])
    low = FEATURES["interval"][0]
    assert histograms["interval"][4 - low] == pytest.approx(1 / 3)
    assert histograms["interval"][-4 - low] == pytest.approx(1 / 3)
    assert histograms["interval"][7 - low] == pytest.approx(1 / 3)
    duration_low = FEATURES["duration"][0]
    assert histograms["duration"][[4 - duration_low, 2 - duration_low, 8 - duration_low,
                                   16 - duration_low]] == pytest.approx([0.25] * 4)
    assert histograms["scale_degree"][[0, 4, 7]] == pytest.approx([0.5, 0.25, 0.25])
    assert histograms["range"][7] == 1.0
    assert histograms["notes_per_bar"][[1, 3]] == pytest.approx([0.5, 0.5])
    # the tonic is a parameter: in G, G is degree 0 and C degree 5
    assert feature_histograms([melody], tonic=7)["scale_degree"][[0, 5, 9]] == pytest.approx(
        [0.25, 0.5, 0.25])
    assert melody_patterns(melody) == [(4, -4, 7, 4, 2, 8, 16)]


def test_every_feature_histogram_sums_to_one_and_an_empty_melody_adds_nothing():
    silent = Melody(np.zeros(64, dtype=np.int64))
    one_note = Melody.from_notes([(60, 0, 16)], 64)
    histograms = feature_histograms([silent, one_note])
    assert histograms["interval"].sum() == 0.0  # no intervals at all
    for name in ("duration", "scale_degree", "range", "notes_per_bar"):
        assert histograms[name].sum() == pytest.approx(1.0)
    report = style_report([silent])
    assert report.longest_run_max == 0 and report.feature_overlap["interval"] == 0.0


# ------------------------------------------------------------------ reference
def test_the_shipped_reference_loads_and_its_histograms_sum_to_one():
    path = default_reference_path()
    assert path.stat().st_size < 20_000  # a few KB
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == 2 and set(data["families"]) == {"duple", "triple", "compound"}
    for family, entry in data["families"].items():
        assert set(entry["histograms"]) == set(FEATURES)
        for name, (low, high) in FEATURES.items():
            assert len(entry["histograms"][name]) == high - low + 1
            assert sum(entry["histograms"][name]) == pytest.approx(1.0, abs=1e-4)
        assert entry["summary"]["family"] == family
        assert load_style_reference(family=family).num_steps == {"duple": 64, "triple": 48, "compound": 48}[family]
    reference = load_style_reference()
    assert reference.num_steps == 64 and reference.family == "duple"
    sizes = [s for s, _ in reference.pattern_curve]
    counts = [c for _, c in reference.pattern_curve]
    assert sizes == sorted(sizes) and counts == sorted(counts) and len(sizes) >= 5
    # the curve interpolates between its points and scales with the melody length
    assert counts[0] < reference.expected_patterns((sizes[0] + sizes[1]) // 2) < counts[1]
    assert reference.expected_patterns(sizes[2], 128) == pytest.approx(
        reference.expected_patterns(2 * sizes[2]))
    summary = reference.summary["report"]
    assert summary["style_overlap"] == pytest.approx(1.0)


def test_the_corpus_reference_overlaps_itself_fully():
    reference = load_style_reference()
    for name in FEATURES:
        assert histogram_overlap(reference.histograms[name], reference.histograms[name]) == (
            pytest.approx(1.0))
    rebuilt = StyleReference.from_json_dict(reference.to_json_dict())
    for name in FEATURES:
        np.testing.assert_allclose(rebuilt.histograms[name], reference.histograms[name], atol=1e-5)


def test_identical_sets_overlap_fully(prior_melodies):
    report = style_report(prior_melodies, reference=prior_melodies, baseline=prior_melodies)
    assert report.style_overlap == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in report.feature_overlap.values())
    assert report.pattern_ratio_to_baseline == pytest.approx(1.0)
    assert report.pattern_ratio_to_reference == pytest.approx(1.0)


def test_build_save_and_load_a_reference(tmp_path, prior_melodies):
    reference = build_style_reference(prior_melodies, sizes=(10, 50, 100, 1000), repeats=2,
                                      rng=np.random.default_rng(0), source={"what": "test"})
    assert [s for s, _ in reference.pattern_curve] == [10, 50, 100]  # no more than there are
    assert reference.summary["what"] == "test" and reference.summary["num_melodies"] == N
    path = save_style_reference(reference, tmp_path / "reference.json")
    loaded = load_style_reference(path)
    assert style_report(prior_melodies, loaded).style_overlap == pytest.approx(1.0, abs=1e-4)
    data = json.loads(path.read_text())
    data["bins"]["interval"] = [-5, 5]
    path.write_text(json.dumps(data))
    load_style_reference.cache_clear()
    from rlcomposer.errors import RLComposerError

    with pytest.raises(RLComposerError, match="rebuild"):
        load_style_reference(path)
    load_style_reference.cache_clear()


def test_a_set_is_compared_with_its_own_metre_familys_reference(tmp_path):
    from rlcomposer.errors import RLComposerError
    from rlcomposer.music.melody import HOLD

    jig = np.array([pitch_token(67), HOLD, HOLD, HOLD, pitch_token(64), HOLD] * 8)  # 4 bars of 6/8
    melodies = [Melody(jig, metre="6/8")] * 3
    compound = load_style_reference(family="compound")
    assert style_report(melodies).feature_overlap == style_report(melodies, compound).feature_overlap
    assert style_report(melodies).feature_overlap != style_report(melodies, load_style_reference()).feature_overlap
    # notes per bar count the melody's own bars (after its pick-up): 4 notes in each 12-step bar
    assert feature_histograms(melodies)["notes_per_bar"][4] == 1.0
    late = Melody(np.concatenate([jig[-2:], jig[:-2]]), metre="6/8", pickup_steps=2)
    assert feature_histograms([late])["notes_per_bar"][4] == 1.0
    # a version-1 file (one 4/4 reference) still reads, as the duple family alone
    old = {k: v for k, v in load_style_reference().to_json_dict().items() if k != "families"}
    old.update(version=1, **load_style_reference().family_json_dict())
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert load_style_reference(path).histograms.keys() == compound.histograms.keys()
    with pytest.raises(RLComposerError, match="rebuild"):
        load_style_reference(path, family="compound")
    load_style_reference.cache_clear()


# --------------------------------------------------------------- real sets
def test_the_prior_overlaps_the_corpus_well(prior_report):
    # ~0.86 at 300 melodies: the prior, told the length, writes whole 4-bar tunes that close
    # (a cadence, fewer notes in the last bar), the reference is excerpts of longer tunes
    # (openings with their pick-up); notes per bar overlap least (~0.73)
    assert prior_report.style_overlap > 0.84
    assert min(prior_report.feature_overlap.values()) > 0.7
    assert prior_report.distinct_melodies == 1.0
    assert 0.7 < prior_report.pattern_ratio_to_reference < 1.6
    assert prior_report.monotone_share < COLLAPSE_THRESHOLDS["monotone_share"]


def test_random_melodies_overlap_the_corpus_badly():
    melodies = [random_melody(np.random.default_rng(seed), 64) for seed in range(N)]
    report = style_report(melodies)
    assert report.style_overlap < 0.6
    assert report.pattern_ratio_to_reference > 1.3  # noise: a new pattern at almost every note
    warnings = collapse_warnings(report)
    assert len(warnings) == 1 and "style overlap" in warnings[0]


def test_a_collapsed_set_overlaps_badly_and_loses_its_patterns(collapsed_report, prior_report):
    assert collapsed_report.style_overlap < 0.6
    assert collapsed_report.monotone_share > 0.9
    assert collapsed_report.longest_run_mean > 8
    assert collapsed_report.pattern_ratio_to_baseline < 0.1
    assert collapsed_report.pattern_ratio_to_reference < 0.15  # the reference: 106 tunes of 4/4 major


def test_distinct_pattern_ratio_of_the_prior_against_itself_is_one(
        prior_melodies, other_prior_melodies):
    report = style_report(other_prior_melodies, baseline=prior_melodies)
    assert report.pattern_ratio_to_baseline == pytest.approx(1.0, abs=0.1)
    assert report.distinct_pattern_ratio == report.pattern_ratio_to_baseline
    # a baseline of another size is compared at the smaller size
    smaller = style_report(other_prior_melodies[:100], baseline=prior_melodies)
    assert smaller.pattern_ratio_to_baseline == pytest.approx(1.0, abs=0.15)


def test_collapse_warnings_for_the_collapsed_set_and_not_the_prior(
        collapsed_report, prior_report, prior_melodies, other_prior_melodies):
    warnings = collapse_warnings(collapsed_report, prior_report, name="the tuned melodies",
                                 baseline_name="the prior")
    text = "\n".join(warnings)
    assert "the tuned melodies collapse" in text and "one pitch repeated" in text
    assert "of the prior's" in text and "4-note patterns" in text
    assert "far below the prior's" in text
    assert collapse_warnings(prior_report) == []
    other = style_report(other_prior_melodies, baseline=prior_melodies)
    assert collapse_warnings(other, prior_report) == []


def test_one_melody_repeated_is_flagged():
    melody = Melody.from_notes([(60 + (i % 5), i, 1) for i in range(16)], 64)
    report = style_report([melody] * 50)
    assert report.distinct_melodies == pytest.approx(1 / 50)
    assert any("distinct" in w and "repeat themselves" in w for w in collapse_warnings(report))


def test_a_noise_baseline_does_not_make_the_prior_look_collapsed(prior_melodies, prior_report):
    noise = [random_melody(np.random.default_rng(seed), 64) for seed in range(N)]
    noise_report = style_report(noise)
    report = style_report(prior_melodies, baseline=noise)
    assert report.pattern_ratio_to_baseline < 0.8  # the noise has more patterns...
    assert collapse_warnings(report, noise_report, baseline_name="random") == []  # ...but it is noise
    fewer = replace(report, pattern_ratio_to_baseline=0.2)
    assert collapse_warnings(fewer, noise_report, baseline_name="random") == []
    # against a musical baseline, fewer patterns warn only if also fewer than the corpus has
    assert collapse_warnings(fewer, prior_report) == []
    warnings = collapse_warnings(replace(fewer, pattern_ratio_to_reference=0.6), prior_report,
                                 baseline_name="the prior")
    assert len(warnings) == 1 and "fell to 20% of the prior's" in warnings[0]


def test_as_dict_is_json_ready(collapsed_report):
    data = json.loads(json.dumps(collapsed_report.as_dict()))
    assert set(data["feature_overlap"]) == set(FEATURES)
    assert data["longest_repeated_pitch_run"]["max"] == collapsed_report.longest_run_max
    assert data["distinct_pattern_ratio"] == pytest.approx(collapsed_report.pattern_ratio_to_baseline)


def test_style_report_needs_melodies_and_a_tonic_per_melody():
    with pytest.raises(ValueError):
        style_report([])
    melody = Melody(np.array([pitch_token(60)] * 16))
    with pytest.raises(ValueError):
        style_report([melody, melody], tonic=[0])
    assert style_report([melody, melody], tonic=[0, 7]).num_melodies == 2
