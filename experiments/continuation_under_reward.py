"""Continuing under a listener's learnt reward model beats the prior's plain continuation (issue 22).

For each report-half panel member of ``--members`` (default 12, 14, ..., 22: members that read
every melody as 4/4 in C, :mod:`rlcomposer.preferences.panel`), a reward model is trained on
``--labels`` noisy answers of that member (default :class:`ListenerNoise`: temperature 0.5,
10% mistakes, 5% tie band) about pairs of melodies in the test openings' shapes, ``--labels`` /
``--tunes`` pairs per opening, drawn independently of the melodies judged. ``--labels-on`` says
which melodies: ``melodies`` (the default) whole 4-bar prior melodies, each drawn in one test
opening's metre, mode, pick-up and length and moved to its key (what a rater's ordinary study
answers are about); ``continuations`` pairs of prior continuations of the test openings (as a
rater's picks on the app's "Continue my tune" page would be: each pair shares its opening, so
the two differ only in their last two bars); ``mixed`` half of each. (A reward model scores only
the shapes it was trained on, and the train split lacks some of the test openings' metre and
pick-up shapes.) Whatever the answers are about, the member is calibrated on the same 2 x
``--labels`` continuations (its spread sets its noise and the tie band): the same rater, asked
different questions.

The ``--tunes`` test-split openings (the same tunes as ``abc_and_continuation.py``'s, pick-up +
2 bars, continued to 4 bars) are continued two ways: best-of-``--best-of`` under the member's
reward model (``continue_melody``'s choice: the candidates are drawn once per opening and shared
by every member, each member keeping its own reward's best; KL to the prior
``log N - (N - 1)/N``, 3.01 nats at N = 54) and one plain prior continuation drawn independently.
The figure is the member's *noiseless* preference for the reward's continuation over the plain one
(1, 0, or 1/2 inside the tie band), averaged over the openings; per member and the median.
Beside it: the reward model's accuracy on fresh continuation pairs (the first two candidates of
each opening, against the member's noiseless preference, ties left out), and a *ceiling*: the
win-rate of best-of-``--best-of`` chosen by the member's own noiseless taste (no reward model).

    python experiments/continuation_under_reward.py [--members 12,14,16,18,20,22] [--labels 300] [--tunes 100] [--best-of 54] [--labels-on melodies] [--seed 0]

Ends with ``name: value`` lines.

Measured (the defaults, about 27 min a run on 2 busy shared cores; experiments/README.md has the
tables). Chosen on choosing-half members 2, 7, 10 (seed 0), median win-rate: continuations 0.815,
mixed 0.815, melodies 0.885, so ``melodies`` is the default. Report half (12-22): seed 0 median
0.780 (0.760-0.870), seed 1 0.788 (0.705-0.840), 2 of 6 at 0.80 or more each (issue 22 asks
0.80: not met; with ``--labels-on continuations`` 0.740 and 0.770); held-out accuracy 0.59-0.75
(0.48-0.66 on continuations). The ceiling (best-of-54 under the member's noiseless taste) is
0.96-1.00, median 0.98: 54 continuations of one opening nearly always hold one the member prefers; what falls short is
the reward model (its accuracy on fresh continuation pairs 0.54-0.83), not best-of-54's reach.
The pick's pessimism (``--pessimism``, the members' mean less lambda x their spread, as
``continue --reward-uncertainty``): choosing half 0.840 / 0.850 / 0.880 / 0.895 at lambda 0 / 0.5 /
1 / 2 (best-of-54), so 2 is ``continue``'s default; report half with it 0.790, 0.782 and 0.798
(two seeds, two draws) against 0.780, 0.790 and 0.805 at lambda 0: no gain there, 0.80 still not
met; best-of-128 (3.86 nats, not chosen) 0.810 and 0.833. Best-of-256, chosen on the choosing half
(seeds 1 and 2), on unseen report seeds 2 and 3: 0.823 and 0.797, with 2.6-3.5% of notes out of
key; best-of-54 with lambda 2 over seven report runs: median 0.795 (0.742-0.825). Neither answers chosen
actively (``--selection active``: choosing half 0.847 against 0.865, mean of three seeds) nor a pick
regularised by the prior's likelihood (``--likelihood-weight``, RBoN-KL: c 0.25 chosen on the choosing
half, 0.850 against 0.837; report half 0.790 / 0.750 against 0.795 / 0.742) was adopted.
A pick kept to the opening's key (``--keep-key 1``, now ``continue``'s default): choosing half
(seeds 1, 2, best-of-256) 0.890 / 0.925 against 0.890 / 0.945, a third to a quarter of the notes out
of key; report half (seeds 2-5, 0, 1, best-of-256) 0.833 / 0.823 / 0.830 / 0.818 / 0.818 / 0.812,
each at 0.80 or more, with 0.7-1.2% of the notes out of the opening's key (the prior's plain
continuations 1.4-2.3%).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from abc_and_continuation import OPENING_BARS, TOTAL_BARS, cut, out_of_key_share, test_split_tunes  # noqa: E402

from rlcomposer.music.keys import Key  # noqa: E402
from rlcomposer.music.melody import Melody, MelodyError  # noqa: E402
from rlcomposer.music.note_list import note_list  # noqa: E402
from rlcomposer.music.style import style_report  # noqa: E402
from rlcomposer.preferences.labels import PairLabel  # noqa: E402
from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener  # noqa: E402
from rlcomposer.preferences.panel import panel_listener  # noqa: E402
from rlcomposer.preferences.reward_functions import pessimistic_scores  # noqa: E402
from rlcomposer.preferences.reward_model import RewardModelConfig, train_reward_model  # noqa: E402
from rlcomposer.prior.continuation import (  # noqa: E402
    REWARD_UNCERTAINTY,
    ContinuationConfig,
    continue_melody,
    keeps_key,
    shift_to_c,
)
from rlcomposer.prior.model import MelodyCondition, load_prior, prior_directory  # noqa: E402
from rlcomposer.rl.kl import best_of_n_kl  # noqa: E402

LABELS_ON = ("continuations", "melodies", "mixed")
"""What the answers are about (``--labels-on``)."""


def opening_of(tune: Melody) -> Melody:
    return cut(tune, 0, tune.pickup_steps + OPENING_BARS * tune.metre.steps_per_bar, tune.pickup_steps)


def continuations(model, tunes: list[Melody], per_tune: int, seed: int) -> list[list[Melody]]:
    """``per_tune`` prior continuations of each tune's opening to ``TOTAL_BARS`` bars."""
    rng = np.random.default_rng(seed)
    config = ContinuationConfig(num_bars=TOTAL_BARS, num_continuations=per_tune, seed=seed, temperature=1.0)
    return [continue_melody(model, opening_of(tune), config, rng) for tune in tunes]


def free_melodies(model, tunes: list[Melody], per_tune: int, seed: int) -> list[list[Melody]]:
    """``per_tune`` whole prior melodies in each tune's shape (metre, mode, pick-up, pick-up + ``TOTAL_BARS``
    bars), moved to the tune's key (left in C when that leaves the range)."""
    rng = np.random.default_rng(seed)
    rows = []
    for tune in tunes:
        steps = tune.pickup_steps + TOTAL_BARS * tune.metre.steps_per_bar
        condition = MelodyCondition(tune.metre, tune.key.mode, steps, tune.pickup_steps)
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        row = []
        for tokens in model.sample(per_tune, steps, generator, condition=condition):
            melody = Melody(tokens, {"model": "prior"}, tune.metre, Key("C", tune.key.mode), tune.pickup_steps)
            try:
                melody = melody.in_key(tune.key)
            except MelodyError:
                pass
            row.append(melody)
        rows.append(row)
    return rows


def continued_bars(melodies: list[Melody], tunes: list[Melody]) -> list[Melody]:
    """Each melody's bars 3-4 (what was continued), cut as its tune's are."""
    rows = []
    for melody, tune in zip(melodies, tunes, strict=True):
        start = tune.pickup_steps + OPENING_BARS * tune.metre.steps_per_bar
        rows.append(cut(melody, start, start + (TOTAL_BARS - OPENING_BARS) * tune.metre.steps_per_bar))
    return rows


def continued_log_likelihood(model, melodies: list[Melody], tune: Melody) -> np.ndarray:
    """The prior's log-likelihood of each continuation's continued steps (after the opening), in C as it samples them."""
    shift = shift_to_c(opening_of(tune))
    in_c = [m.transpose(shift, Key("C", tune.key.mode)) for m in melodies]
    condition = MelodyCondition(tune.metre, tune.key.mode, in_c[0].num_steps, tune.pickup_steps)
    tokens = torch.as_tensor(np.stack([m.tokens for m in in_c])).long()
    with torch.no_grad():
        steps = model.log_likelihood(tokens, condition)
    return steps[:, opening_of(tune).num_steps:].sum(-1).double().numpy()


def standardised(values: np.ndarray) -> np.ndarray:
    spread = float(np.std(values))
    return (values - np.mean(values)) / spread if spread > 0 else values - np.mean(values)


def label_pairs(rows: list[list[Melody]], count: int) -> list[tuple[Melody, Melody]]:
    """``count`` pairs, one per tune in turn: (row[0], row[1]) of every tune, then (row[2], row[3]), ..."""
    return [(row[2 * k], row[2 * k + 1]) for k in range(len(rows[0]) // 2) for row in rows][:count]


def active_pairs(reward, rows: list[list[Melody]], asked: set[tuple[int, int, int]], count: int) -> list[tuple[int, int, int]]:
    """``count`` unasked pairs ``(opening, i, j)`` of free melodies where the reward ensemble's members disagree
    most on P(A beats B) (each melody in at most one pair of the batch), as a study's ``selection: active``
    chooses its next pairs."""
    candidates = []
    for t, row in enumerate(rows):
        scores = reward.member_scores(row)  # [K, per opening]
        for i in range(len(row)):
            for j in range(i + 1, len(row)):
                if (t, i, j) not in asked:
                    p = 1.0 / (1.0 + np.exp(-np.clip(scores[:, i] - scores[:, j], -50, 50)))
                    candidates.append((float(p.var()), t, i, j))
    candidates.sort(reverse=True)
    chosen, used = [], set()
    for _, t, i, j in candidates:
        if (t, i) in used or (t, j) in used:
            continue
        chosen.append((t, i, j))
        used.update({(t, i), (t, j)})
        if len(chosen) == count:
            break
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="12,14,16,18,20,22", help="panel members (comma-separated)")
    parser.add_argument("--labels", type=int, default=300, help="noisy answers per member")
    parser.add_argument("--tunes", type=int, default=100, help="test-split openings to continue")
    parser.add_argument("--best-of", default="54",
                        help="N of best-of-N under the reward model; several (comma-separated) are judged on the "
                             "same candidates (each N the first N of every opening's), the first is the headline")
    parser.add_argument("--pessimism", default=f"{REWARD_UNCERTAINTY:g}",
                        help="lambda of the pick's score, the ensemble's mean - lambda x its members' standard "
                             "deviation (default: continue's --reward-uncertainty); several (comma-separated) are judged side by side, the first is the headline")
    parser.add_argument("--labels-on", choices=LABELS_ON, default="melodies",
                        help="what the answers are about: pairs of continuations of the test openings, pairs of "
                             "whole prior melodies in their shapes, or half of each")
    parser.add_argument("--likelihood-weight", default="0",
                        help="c of a regularised pick (RBoN-KL, Jinnai et al. 2024): the standardised pessimistic "
                             "score plus c x the standardised prior log-likelihood of the continued bars, both over "
                             "an opening's candidates; several (comma-separated) are judged side by side")
    parser.add_argument("--keep-key", default="0",
                        help="1: pick only among the candidates that add no pitch class outside the opening's key "
                             "that the opening did not use itself (all of them when none does); 0: among all; "
                             "both (0,1) are judged side by side on the same candidates, the first is the headline")
    parser.add_argument("--selection", choices=("random", "active"), default="random",
                        help="how the answers' pairs are chosen (answers about whole melodies only): random, or "
                             "active: the first third random, then two batches where the reward model trained on the "
                             "answers so far disagrees most (among --active-melodies melodies per opening)")
    parser.add_argument("--active-melodies", type=int, default=12,
                        help="with --selection active: whole prior melodies drawn per opening to choose pairs among")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.selection == "active" and args.labels_on != "melodies":
        parser.error("--selection active asks about whole melodies: use it with --labels-on melodies")
    members = [int(m) for m in args.members.split(",") if m.strip()]
    sizes = [int(n) for n in args.best_of.split(",") if n.strip()]
    lambdas = [float(x) for x in args.pessimism.split(",") if x.strip()]
    if not sizes or min(sizes) < 2:
        parser.error(f"--best-of {args.best_of}: each N must be 2 or more")
    if not lambdas or min(lambdas) < 0 or not all(np.isfinite(lambdas)):
        parser.error(f"--pessimism {args.pessimism}: each lambda must be finite and 0 or more")
    weights = [float(c) for c in args.likelihood_weight.split(",") if c.strip()]
    if not weights or min(weights) < 0 or not all(np.isfinite(weights)):
        parser.error(f"--likelihood-weight {args.likelihood_weight}: each c must be finite and 0 or more")
    keep_keys = [int(k) for k in args.keep_key.split(",") if k.strip()]
    if not keep_keys or not set(keep_keys) <= {0, 1}:
        parser.error(f"--keep-key {args.keep_key}: each value must be 0 or 1")
    settings = [(n, lam, c, k) for n in sizes for lam in lambdas for c in weights for k in keep_keys]
    headline = settings[0]
    started = time.perf_counter()
    prior = load_prior(prior_directory("prior"))
    tunes = test_split_tunes(args.tunes)
    per_opening = -(-args.labels // len(tunes))
    drawn = continuations(prior, tunes, 2 * per_opening, args.seed + 1)
    calibration = [m for pair in label_pairs(drawn, args.labels) for m in pair]  # the same rater whatever it is asked
    free = args.labels_on != "continuations"
    share = {"continuations": 0, "melodies": args.labels, "mixed": args.labels // 2}[args.labels_on]
    train_pairs = label_pairs(drawn, args.labels - share)
    if free and args.selection == "active":
        pool_rows = free_melodies(prior, tunes, max(args.active_melodies, 2 * per_opening), args.seed + 4)
        first = args.labels // 3
        train_pairs += label_pairs(pool_rows, first)
    elif free:
        train_pairs += label_pairs(free_melodies(prior, tunes, 2 * per_opening, args.seed + 4), share)
    candidates = continuations(prior, tunes, max(sizes), args.seed + 2)
    plain = [row[0] for row in continuations(prior, tunes, 1, args.seed + 3)]
    likelihoods = [continued_log_likelihood(prior, row, tune) for row, tune in zip(candidates, tunes, strict=True)]
    in_key = [np.array([keeps_key(m, opening_of(tune)) for m in row]) for row, tune in zip(candidates, tunes, strict=True)]
    print(f"selection: {args.selection}; "
          f"{len(train_pairs) if args.selection == 'random' else args.labels} label pairs ({share} of whole prior melodies), {len(tunes)} test openings, best-of-{max(sizes)} "
          f"(KL {best_of_n_kl(max(sizes)):.2f} nats); melodies drawn in {time.perf_counter() - started:.0f} s",
          flush=True)
    others = settings[1:]
    print("\n| member | held-out accuracy of its reward model | its accuracy on fresh continuation pairs | win-rate vs the prior's continuation | "
          "ceiling: best-of-N under its noiseless taste | reward training (s) |"
          + "".join(f" N {n}, lambda {lam:g}, c {c:g}, keep key {k} |" for n, lam, c, k in others))
    print("|---|---|---|---|---|---|" + "---|" * len(others), flush=True)
    rates: dict[tuple[int, float, float, int], dict[int, float]] = {setting: {} for setting in settings}
    key_shares: dict[tuple[int, float, float, int], dict[int, float]] = {setting: {} for setting in settings}
    ceilings, fresh, styles, out_of_key = {}, {}, {}, {}
    real = continued_bars(tunes, tunes)
    keys = [tune.key for tune in tunes]
    n_head = headline[0]
    for member in members:
        begun = time.perf_counter()
        listener = SimulatedListener(panel_listener(member), f"panel:{member}", ListenerNoise(),
                                     np.random.default_rng([args.seed, member]))
        listener.calibrate(calibration)
        labels = [PairLabel(a, b, listener.compare(a, b), listener.rater_name) for a, b in train_pairs]
        reward = train_reward_model(labels, [], RewardModelConfig(seed=args.seed), prior=prior, log=None)
        if args.selection == "active":
            asked = {(k % len(tunes), 2 * (k // len(tunes)), 2 * (k // len(tunes)) + 1) for k in range(first)}
            rest = args.labels - first
            for batch in (rest - rest // 2, rest // 2):
                picks = active_pairs(reward, pool_rows, asked, batch)
                asked.update(picks)
                labels += [PairLabel(pool_rows[t][i], pool_rows[t][j], listener.compare(pool_rows[t][i], pool_rows[t][j]),
                                     listener.rater_name) for t, i, j in picks]
                reward = train_reward_model(labels, [], RewardModelConfig(seed=args.seed), prior=prior, log=None)
        trained = time.perf_counter() - begun
        member_scores = [reward.member_scores(row) for row in candidates]  # [K, max N] per opening
        for n, lam, c, k in settings:
            chosen = []
            for row, scores, likelihood, allowed in zip(candidates, member_scores, likelihoods, in_key, strict=True):
                score = standardised(pessimistic_scores(scores[:, :n], lam)) + c * standardised(likelihood[:n])
                if k and allowed[:n].any():
                    score = np.where(allowed[:n], score, -np.inf)
                chosen.append(row[int(np.argmax(score))])
            rates[(n, lam, c, k)][member] = float(np.mean(listener.preferences(chosen, plain)))
            bars = continued_bars(chosen, tunes)
            key_shares[(n, lam, c, k)][member] = out_of_key_share(bars, keys)
            if (n, lam, c, k) == headline:
                styles[member] = style_report(bars, real).style_overlap
                out_of_key[member] = key_shares[headline][member]
                if member == members[0]:
                    shown = "\n".join(f"    {note_list(m)}" for m in chosen[:2])
                    print(f"(panel:{member}'s first two continuations, opening included:\n{shown})", flush=True)
        truth = listener.preferences([row[0] for row in candidates], [row[1] for row in candidates])
        guess = np.array([float(scores[:, 0].mean() - scores[:, 1].mean() > 0) for scores in member_scores])
        fresh[member] = float(np.mean(guess[truth != 0.5] == truth[truth != 0.5]))
        best = [row[:n_head][int(np.argmax(listener.scores(row[:n_head])))] for row in candidates]  # its own noiseless taste
        ceilings[member] = float(np.mean(listener.preferences(best, plain)))
        accuracy = (reward.metrics or {}).get("held_out", {}).get("accuracy")
        print(f"| panel:{member} | {accuracy if accuracy is None else f'{accuracy:.3f}'} | {fresh[member]:.3f} | "
              f"{rates[headline][member]:.3f} | {ceilings[member]:.3f} | {trained:.0f} |"
              + "".join(f" {rates[setting][member]:.3f} |" for setting in others), flush=True)
    values = list(rates[headline].values())
    print(f"\n({time.perf_counter() - started:.0f} s)\n")
    for n, lam, c, k in others:
        other = list(rates[(n, lam, c, k)].values())
        print(f"best-of-{n}, lambda {lam:g}, c {c:g}, keep key {k} (KL {best_of_n_kl(n):.2f} nats): median {float(np.median(other)):.3f}, "
              f"min {min(other):.3f}, {sum(v >= 0.80 for v in other)}/{len(other)} at 0.80 or more, "
              f"median out-of-key share {float(np.median(list(key_shares[(n, lam, c, k)].values()))):.3f}")
    print(f"members: {len(values)}")
    print(f"best_of: {headline[0]}")
    print(f"pessimism: {headline[1]:g}")
    print(f"likelihood_weight: {headline[2]:g}")
    print(f"keep_key: {headline[3]}")
    print(f"candidates_keeping_the_key: {float(np.mean([a.mean() for a in in_key])):.3f}")
    print(f"median_win_rate: {float(np.median(values)):.3f}")
    print(f"min_win_rate: {min(values):.3f}")
    print(f"members_at_0.80_or_more: {sum(v >= 0.80 for v in values)}/{len(values)}")
    print(f"median_ceiling_win_rate: {float(np.median(list(ceilings.values()))):.3f}")
    print(f"kl_to_prior_nats: {best_of_n_kl(headline[0]):.2f}")
    plain_bars = continued_bars(plain, tunes)
    print(f"median_style_overlap_with_real_bars_3_4: {float(np.median(list(styles.values()))):.3f} "
          f"(the prior's plain continuations: {style_report(plain_bars, real).style_overlap:.3f})")
    print(f"median_out_of_key_share: {float(np.median(list(out_of_key.values()))):.3f} "
          f"(the prior's plain continuations: {out_of_key_share(plain_bars, keys):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
