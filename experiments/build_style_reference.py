"""Rebuild rlcomposer/data/style_reference.json from the held-out test split of the corpus.

    rlcomposer corpus build
    python experiments/build_style_reference.py [--cache-dir DIR] [--n 8000] [--seed 0] [--out FILE]

Samples 4-bar bar-aligned excerpts of the test split's 4/4 major tunes (the shape
``generate`` makes by default) exactly as the ``corpus`` model of ``rlcomposer
evaluate --metre 4/4 --mode major`` does (openings first, then random excerpts),
computes the histograms of :mod:`rlcomposer.music.style` over them and the
corpus's distinct-pattern count per number of melodies, and writes the JSON
(a few KB) that ships with the package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rlcomposer.cli.common import default_cache_dir
from rlcomposer.corpus.build import CorpusConfig, cache_key, load_corpus
from rlcomposer.music.style import (
    REFERENCE_NUM_STEPS,
    build_style_reference,
    save_style_reference,
)
from rlcomposer.prior.model import MelodyCondition
from rlcomposer.prior.registry import CorpusModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="the corpus cache folder")
    parser.add_argument("--n", type=int, default=8000, help="excerpts for the histograms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: the package's file")
    args = parser.parse_args()

    corpus = load_corpus(args.cache_dir or default_cache_dir())
    test = corpus.melodies("test")
    model = CorpusModel(test)
    condition = MelodyCondition("4/4", "major", REFERENCE_NUM_STEPS)
    tunes = sum(1 for t in test if (t.metre.name, t.key.mode) == ("4/4", "major")
                and t.num_steps >= REFERENCE_NUM_STEPS)
    rng = np.random.default_rng(args.seed)
    melodies = model.sample(args.n, REFERENCE_NUM_STEPS, rng, condition=condition)
    reference = build_style_reference(
        melodies,
        lambda n: model.sample(n, REFERENCE_NUM_STEPS, rng, condition=condition),
        rng=rng,
        source={"corpus": "rlcomposer corpus build (music21 folk collections), test split",
                "corpus_cache_key": cache_key(CorpusConfig()),
                "test_tunes": tunes,
                "excerpts": "4-bar bar-aligned excerpts of the 4/4 major test tunes, as "
                            "resolve_model('corpus').sample(condition=4/4 major)",
                "seed": args.seed},
    )
    path = save_style_reference(reference, args.out)
    report = reference.summary["report"]
    print(f"wrote {path} ({path.stat().st_size} bytes): {len(melodies)} excerpts of "
          f"{tunes} 4/4 major test tunes; style overlap with itself {report['style_overlap']:.3f}")


if __name__ == "__main__":
    main()
