"""The shipped prior on the full corpus (slow: builds the whole corpus cache).

Checks what the README and the closing note claim: the shipped prior's test-split
figures are reproduced from its weights and a fresh corpus build, and its
perplexity is at least 15% below the best smoothed n-gram.
"""

from __future__ import annotations

import json

import pytest

from rlcomposer.corpus.build import build_corpus
from rlcomposer.corpus.corpus import CorpusConfig
from rlcomposer.prior.model import SHIPPED_PRIOR_DIR, load_prior
from rlcomposer.prior.training import score_ngram_baseline, score_prior

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_corpus(tmp_path_factory):
    return build_corpus(CorpusConfig(), tmp_path_factory.mktemp("corpus"), progress=False)


def test_full_corpus_keeps_nine_thousand_tunes_of_every_metre_and_counts_the_rest(full_corpus):
    stats = full_corpus.stats
    assert stats.kept >= 9000
    assert stats.parsed == stats.kept + sum(stats.skipped_by_reason.values())
    assert {"2/4", "4/4", "3/4", "6/8", "9/8"} <= set(stats.kept_by_metre)
    assert {"major", "minor", "dorian", "mixolydian"} <= set(stats.kept_by_mode)
    assert full_corpus.num_tunes("test") > 400


def test_shipped_prior_reproduces_its_test_figures_and_beats_ngram_in_every_family(full_corpus):
    from rlcomposer.cli.prior import corpus_conditions, duple_as_before

    shipped = json.loads((SHIPPED_PRIOR_DIR / "metrics.json").read_text())
    test = full_corpus.sequences("test")  # from each tune's first note: pick-ups as partial bars
    prior = load_prior()
    assert prior.config.pickups and prior.config.finals
    score = score_prior(prior, test, 64, corpus_conditions(full_corpus, "test"))
    assert score.num_steps == shipped["test"]["num_steps"]
    assert score.nll_per_step == pytest.approx(shipped["test"]["nll_per_step"], abs=1e-3)
    baseline = score_ngram_baseline(full_corpus.sequences("train"),
                                    full_corpus.sequences("validation"), test)
    assert score.perplexity <= 0.85 * baseline["test_perplexity"]
    for family, row in shipped["test_by_family"].items():
        if row["tunes"] >= 30:
            assert row["perplexity_reduction_vs_ngram"] >= 0.15, family
    # the same notes as the prior before pick-ups scored them (its padding as context only):
    # 0.8341 per step on these duple tunes; per note 2.103 duple, 2.130 triple, 1.828 compound
    assert duple_as_before(prior, full_corpus)["nll_per_step"] <= 0.8341
    earlier_per_note = {"duple": 2.103, "triple": 2.1305, "compound": 1.828}
    for family, row in shipped["test_by_family"].items():
        assert row["nll_per_note"] <= earlier_per_note[family], family
