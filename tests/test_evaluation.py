"""Tests of the side-by-side evaluation (rlcomposer.experiments.evaluation): style and collapse rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcomposer.experiments.evaluation import evaluate_models, format_evaluation
from rlcomposer.music.melody import Melody
from rlcomposer.music.style import FEATURES
from rlcomposer.prior.registry import RandomModel, resolve_model


class CollapsedModel:
    """What a collapsed PPO policy sings: E4 in quarter notes, now and then a neighbour."""

    name = "collapsed"

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None):
        melodies = []
        for _ in range(num_melodies):
            notes = [(64 + (int(rng.choice([-1, 1])) if rng.random() < 0.1 else 0), q, 1.0)
                     for q in range(num_steps // 4)]
            melodies.append(Melody.from_notes(notes, num_steps, {"model": self.name}))
        return melodies


@pytest.fixture(scope="module")
def results():
    models = [resolve_model("prior"), CollapsedModel(), RandomModel()]
    return evaluate_models(models, 150, 64, np.random.default_rng(0),
                           listener_fn=lambda m: float(len(m.notes())), reference_index=0)


def test_every_model_gets_a_style_report_against_the_baseline(results):
    prior, collapsed, random = results
    assert prior.is_baseline and not collapsed.is_baseline and not random.is_baseline
    assert prior.style.pattern_ratio_to_baseline == 1.0  # the baseline against itself
    assert collapsed.style.pattern_ratio_to_baseline < 0.2
    assert prior.style.style_overlap > 0.85
    assert collapsed.style.style_overlap < 0.6 and random.style.style_overlap < 0.6
    assert prior.collapse_warnings == []
    assert any("one pitch repeated" in w for w in collapsed.collapse_warnings)
    assert any("of prior's" in w for w in collapsed.collapse_warnings)


def test_the_table_shows_style_beside_win_rate_and_kl_and_warnings_under_it(results):
    text = format_evaluation(results)
    table, _, warnings = text.partition("Warnings:")
    for row in ("Listener win-rate vs prior", "KL to prior / melody", "Style overlap with corpus",
                "overlap: intervals", "Distinct melodies", "Distinct 4-note patterns",
                "patterns relative to prior", "patterns relative to corpus",
                "Longest one-pitch run (mean / max)", "Notes not in key"):
        assert row in table
    assert "collapsed's melodies collapse: 100% of them are one pitch repeated" in warnings
    assert "prior's melodies" not in warnings
    assert "style overlap of random's melodies" in warnings


def test_the_json_keeps_its_keys_and_adds_the_style(results):
    data = json.loads(json.dumps([r.as_dict() for r in results]))
    for key in ("name", "metrics", "prior_log_likelihood_per_step", "kl_to_prior_per_melody",
                "mean_reward", "listener_score", "win_rate"):
        assert key in data[0]
    assert set(data[1]["style"]["feature_overlap"]) == set(FEATURES)
    assert data[1]["collapse_warnings"] == results[1].collapse_warnings
    assert data[0]["is_baseline"] is True
    assert data[0]["style"]["distinct_melodies"] == 1.0


def test_no_warnings_section_when_all_is_well():
    prior = resolve_model("prior")
    results = evaluate_models([prior], 60, 64, np.random.default_rng(1))
    assert results[0].is_baseline and results[0].collapse_warnings == []
    assert "Warnings:" not in format_evaluation(results)
