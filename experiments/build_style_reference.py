"""Rebuild rlcomposer/data/style_reference.json from the held-out test split of the corpus.

    rlcomposer corpus build
    python experiments/build_style_reference.py [--cache-dir DIR] [--n 8000] [--seed 0] [--out FILE]
                                                [--families duple,triple,compound]

One reference per metre family: for each, samples 4-bar bar-aligned excerpts of the test
split's major tunes in the family's metre (duple: 4/4, triple: 3/4, compound: 6/8; the shape
``generate --metre M`` makes) exactly as the ``corpus`` model of ``rlcomposer evaluate --metre M
--mode major`` does (openings first, then random excerpts), computes the histograms of
:mod:`rlcomposer.music.style` over them and the corpus's distinct-pattern count per number of
melodies, and writes the JSON (a few KB) that ships with the package. ``--families`` rebuilds
some families and keeps the others of the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rlcomposer.cli.common import default_cache_dir
from rlcomposer.corpus.build import cache_key, load_corpus
from rlcomposer.corpus.corpus import CorpusConfig
from rlcomposer.music.metre import FAMILIES
from rlcomposer.music.style import build_style_reference, save_style_reference
from rlcomposer.music.style_reference import FAMILY_METRES, family_num_steps
from rlcomposer.prior.model import MelodyCondition
from rlcomposer.prior.registry import CorpusModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help="the corpus cache folder")
    parser.add_argument("--n", type=int, default=8000, help="excerpts for the histograms (per family)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated metre families")
    parser.add_argument("--out", type=Path, default=None, help="default: the package's file")
    args = parser.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown metre family {unknown[0]!r}: one of {', '.join(FAMILIES)}")

    corpus = load_corpus(args.cache_dir or default_cache_dir())
    test = corpus.melodies("test")
    model = CorpusModel(test)
    for family in families:
        metre, steps = FAMILY_METRES[family], family_num_steps(family)
        condition = MelodyCondition(metre, "major", steps)
        tunes = sum(1 for t in test if (t.metre.name, t.key.mode) == (metre, "major") and t.num_steps >= steps)
        rng = np.random.default_rng(args.seed)
        melodies = model.sample(args.n, steps, rng, condition=condition)
        reference = build_style_reference(
            melodies,
            lambda n, steps=steps, condition=condition, rng=rng: model.sample(n, steps, rng, condition=condition),
            rng=rng,
            source={"corpus": "rlcomposer corpus build (music21 folk collections), test split",
                    "corpus_cache_key": cache_key(CorpusConfig()),
                    "family": family, "metre": metre,
                    "test_tunes": tunes,
                    "excerpts": f"4-bar bar-aligned excerpts of the {metre} major test tunes, as "
                                f"resolve_model('corpus').sample(condition={metre} major)",
                    "seed": args.seed},
        )
        path = save_style_reference(reference, args.out)
        report = reference.summary["report"]
        print(f"wrote the {family} family into {path}: {len(melodies)} excerpts of {tunes} {metre} major test "
              f"tunes; style overlap with itself {report['style_overlap']:.3f}")


if __name__ == "__main__":
    main()
