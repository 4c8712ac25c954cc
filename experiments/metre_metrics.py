"""The Sequence Tutor music metrics per metre family: held-out corpus vs the prior vs random.

For each family (duple, triple, compound) and each of its metres with test tunes
of at least ``--bars`` bars, ``--n`` melodies of ``--bars`` bars are drawn from
each model: the corpus (openings and excerpts of test-split tunes in that
metre, in their mode), the shipped prior (told the metre and, melody by melody,
a mode drawn from the test tunes of that metre) and uniformly random tokens.
"In key" and "tonic" are judged in each melody's own key. Prints one Markdown
table per family.

    python experiments/metre_metrics.py [--n 300] [--bars 4] [--seed 0]

Needs the corpus cache (`rlcomposer corpus build`).
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from rlcomposer.corpus.build import load_corpus
from rlcomposer.corpus.corpus import CorpusConfig
from rlcomposer.music.metre import FAMILIES, METRES
from rlcomposer.music.metrics import compute_music_metrics, format_metrics_table
from rlcomposer.prior.model import MelodyCondition, load_prior
from rlcomposer.prior.registry import CorpusModel, PriorModel, RandomModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="melodies per model and metre")
    parser.add_argument("--bars", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    from platformdirs import user_cache_dir

    cache_dir = args.cache_dir or f"{user_cache_dir('rlcomposer')}/corpus"
    test = load_corpus(cache_dir, CorpusConfig()).melodies("test")
    rng = np.random.default_rng(args.seed)
    models = {"corpus": CorpusModel(test), "prior": PriorModel(load_prior(), "prior"),
              "random": RandomModel()}
    for family in FAMILIES:
        samples: dict[str, list] = {name: [] for name in models}
        used = []
        for metre in (m for m in METRES if m.family == family):
            steps = args.bars * metre.steps_per_bar
            tunes = [t for t in test if t.metre == metre and t.num_steps >= steps]
            if not tunes:
                continue
            used.append(f"{metre.name} ({len(tunes)} tunes)")
            modes = Counter(t.key.mode for t in tunes)
            for mode, count in modes.items():
                share = max(1, round(args.n * count / len(tunes)))
                condition = MelodyCondition(metre, mode, steps)
                for name, model in models.items():
                    samples[name] += model.sample(share, steps, rng, condition=condition)
        if not used:
            continue
        metrics = {name: compute_music_metrics(melodies) for name, melodies in samples.items()}
        print(f"\n### {family}: {', '.join(used)}; {args.bars} bars, "
              f"{len(samples['prior'])} melodies per model\n")
        print(format_metrics_table(metrics))


if __name__ == "__main__":
    main()
