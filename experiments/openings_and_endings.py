"""How a prior's melodies open and end, beside the corpus's held-out tunes.

Openings (``--n`` melodies of 4 bars in 4/4, 3/4 and 6/8, major, as
``rlcomposer generate`` makes them by default):

* the share that open with a beat or more of silence (a beat: the quarter of
  4/4 and 3/4, the dotted quarter of 6/8);
* the median sounding span in bars (first onset to the last note's end), and how real tunes end
  (the share with a beat or more of rest after their last note, by pick-up, and the span of their
  last 4 bars) beside the generated melodies' share;
* style overlap with 4-bar excerpts of the held-out tunes of that metre
  (openings first, as the ``corpus`` model draws them), beside the overlap of
  two disjoint halves of those excerpts (what "as real as the corpus" reads as).

Endings (``--n`` melodies of 8 bars per metre family and per mode with at
least 300 corpus tunes): the share whose last note is the tonic, beside the
share of the corpus's tunes (all splits) of that family and mode that end on
it.

    python experiments/openings_and_endings.py [--model prior] [--n 200] [--seed 0]

Needs the corpus cache (`rlcomposer corpus build`).
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from rlcomposer.corpus.build import load_corpus
from rlcomposer.corpus.corpus import SPLITS, CorpusConfig
from rlcomposer.music.metre import parse_metre
from rlcomposer.music.notes import note_events
from rlcomposer.music.style import style_report
from rlcomposer.prior.generation import GenerationConfig, sample_melodies
from rlcomposer.prior.model import MelodyCondition
from rlcomposer.prior.registry import CorpusModel, resolve_model

OPENING_METRES = ("4/4", "3/4", "6/8")
ENDING_METRES = {"duple": "4/4", "triple": "3/4", "compound": "6/8"}
MIN_MODE_TUNES = 300


def opening_silence_steps(melody) -> int:
    """Steps before the first note (the whole melody if it has none)."""
    onsets, _, _ = note_events(melody.tokens)
    return int(onsets[0]) if onsets.size else melody.num_steps


def sounding_span_bars(melody) -> float:
    """From the first onset to the end of the last note, in bars of the melody's metre."""
    onsets, _, durations = note_events(melody.tokens)
    if not onsets.size:
        return 0.0
    return float(onsets[-1] + durations[-1] - onsets[0]) / melody.metre.steps_per_bar


def closing_rest_steps(melody) -> int:
    """Steps of rest after the last note."""
    onsets, _, durations = note_events(melody.tokens)
    return int(melody.num_steps - (onsets[-1] + durations[-1])) if onsets.size else melody.num_steps


def last_bars_span(melody, bars: int) -> float:
    """The sounding span of a tune's last ``bars`` bars: from the first onset in them to the end of the
    last note, in bars."""
    onsets, _, durations = note_events(melody.tokens)
    start = melody.num_steps - bars * melody.metre.steps_per_bar
    inside = onsets[onsets >= start]
    first = inside[0] if inside.size else start
    return float(onsets[-1] + durations[-1] - first) / melody.metre.steps_per_bar


def ends_on_tonic(melody) -> bool:
    notes = melody.notes()
    return bool(notes) and (notes[-1][0] - melody.key.tonic_pitch_class) % 12 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prior", help="a prior or policy directory, or 'prior'")
    parser.add_argument("--n", type=int, default=200, help="melodies per metre (and per mode for endings)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    from platformdirs import user_cache_dir

    cache_dir = args.cache_dir or f"{user_cache_dir('rlcomposer')}/corpus"
    corpus = load_corpus(cache_dir, CorpusConfig())
    test = corpus.melodies("test")
    every_tune = [m for split in SPLITS for m in corpus.melodies(split)]
    model = resolve_model(args.model)
    rng = np.random.default_rng(args.seed)

    print(f"## Openings: {args.n} melodies of 4 bars per metre, major ({args.model}, seed {args.seed})\n")
    print("| metre | open with >= a beat of silence | median sounding span (bars) | style overlap with "
          "held-out tunes | held-out half vs half |")
    print("|---|---|---|---|---|")
    generated = {}  # the 4-bar melodies of each metre, for the openings and for how they end
    for name in OPENING_METRES:
        metre = parse_metre(name)
        melodies = generated[name] = sample_melodies(model, GenerationConfig(num_melodies=args.n, num_bars=4,
                                                                              metre=name, seed=args.seed))
        silent = np.mean([opening_silence_steps(m) >= metre.beat_steps for m in melodies])
        span = float(np.median([sounding_span_bars(m) for m in melodies]))
        real = CorpusModel([t for t in test if t.metre == metre]).sample(
            2 * args.n, 4 * metre.steps_per_bar, rng, condition=MelodyCondition(metre, "major"))
        overlap = style_report(melodies, real).style_overlap
        halves = style_report(real[: args.n], real[args.n:]).style_overlap
        print(f"| {name} | {silent:.1%} | {span:.2f} | {overlap:.3f} | {halves:.3f} |")

    print("\nHow real tunes end (every split), beside the generated melodies' endings: the share that end "
          "with a beat or more of rest, and the sounding span of their last 4 bars (first onset in them to "
          "the last note's end)\n")
    print("| metre | generated: end with >= a beat of rest | real tunes starting on the downbeat | "
          "real tunes with a pick-up | real tunes' last 4 bars, median span |")
    print("|---|---|---|---|---|")
    for name, melodies in generated.items():
        metre = parse_metre(name)
        tunes = [t for t in every_tune if t.metre == metre]
        downbeat = [t for t in tunes if t.pickup_steps == 0]
        pickup = [t for t in tunes if t.pickup_steps > 0]
        print(f"| {name} | {np.mean([closing_rest_steps(m) >= metre.beat_steps for m in melodies]):.1%} | "
              f"{np.mean([closing_rest_steps(t) >= metre.beat_steps for t in downbeat]):.1%} of {len(downbeat)} | "
              f"{np.mean([closing_rest_steps(t) >= metre.beat_steps for t in pickup]):.1%} of {len(pickup)} | "
              f"{np.median([last_bars_span(t, 4) for t in tunes]):.2f} |")

    print(f"\n## Endings: {args.n} melodies of 8 bars per metre family and mode ({args.model})\n")
    counts = Counter(t.key.mode for t in every_tune)
    modes = [mode for mode, count in counts.most_common() if count >= MIN_MODE_TUNES]
    print("| family (metre) | mode | end on the tonic | corpus tunes of the family and mode that do |")
    print("|---|---|---|---|")
    for family, name in ENDING_METRES.items():
        for mode in modes:
            melodies = sample_melodies(model, GenerationConfig(num_melodies=args.n, num_bars=8, metre=name,
                                                               mode=mode, seed=args.seed))
            rate = np.mean([ends_on_tonic(m) for m in melodies])
            real = [t for t in every_tune if t.metre.family == family and t.key.mode == mode]
            real_rate = np.mean([ends_on_tonic(t) for t in real]) if real else float("nan")
            print(f"| {family} ({name}) | {mode} | {rate:.1%} | {real_rate:.1%} of {len(real)} |")
    first = sample_melodies(model, GenerationConfig(num_melodies=3, num_bars=8, metre="6/8", mode="dorian",
                                                    seed=args.seed))
    from rlcomposer.music.note_list import note_list

    print("\nThree 8-bar 6/8 dorian melodies as notes:\n")
    for melody in first:
        print(f"- `{note_list(melody)}`")


if __name__ == "__main__":
    main()
