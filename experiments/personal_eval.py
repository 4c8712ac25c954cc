"""Personal reward models: melodies made for each rater of one study.

One SQLite study database (in ``--out``) holds a pool of prior melodies (4 bars of 4/4 major)
and the noisy answers (default :class:`ListenerNoise`) of 15 raters: the panel's report half
(``panel:12`` .. ``panel:23``) and the built-in ``lyrical``, ``rhythmic`` and ``adventurous``
(``--members choose``: the choosing half ``panel:0`` .. ``panel:11`` instead, the only raters a
setting such as the penalty may be chosen on). For each N of ``--answers`` (each rater's answers
grow to N in the same database), a population reward model is trained on everyone's answers, a
rater-alone model on each rater's, and the personal model
(:mod:`rlcomposer.preferences.personal_reward`) on both; the table gives, per rater, the
accuracy of each against the rater's *noiseless* preference on ``--test-pairs`` pairs of fresh
prior melodies (pairs inside the rater's tie band left out).

At the largest N, for each rater: best-of-``--best-of`` from the prior (KL = log N - (N-1)/N,
3.0 nats at N=54) under the rater's personal reward, against ``--melodies`` plain prior
melodies (win-rate by the rater's noiseless preference, ties 1/2), and head to head against
best-of-N under the pooled (population) reward (independent candidates).

    .venv/bin/python experiments/personal_eval.py --answers 10,25,50 --seed 0 --out personal-eval
    .venv/bin/python experiments/personal_eval.py --members choose --penalties 1,3,10,30,100 --out choose

Ends with ``name: value`` lines (the must-show figures of issue 21).

Measured with seed 0 and the defaults (penalty 30 and pessimism 1, both chosen with ``--members
choose``; 3-7 minutes on a shared core): report half, accuracy against the noiseless preference,
mean over the 15 raters, population / alone / personal: 0.604 / 0.642 / 0.642 at 10 answers
(personal within 0.02 of the population or better for 14 of 15), 0.598 / 0.649 / 0.679 at 25,
0.614 / 0.678 / 0.728 at 50 (15 of 15). Best-of-54 at 50 answers: made for each rater against
the prior, median 0.839 (0.675-0.950; the issue asks 0.85: not met); against best-of-54 from the
pooled model, 0.60 or more for 12 of 15 (mean 0.733). Without pessimism: median 0.780, 11 of 15.
Choosing half (pessimism 1): median 0.859, 8 of 12 at 0.60 or more, cold start 10 of 12. Tried there
and not adopted: pairs chosen by each rater's own uncertainty after the first 10 answers
(``--selection active``: 0.822, 8 of 12), a pick regularised by the prior's likelihood
(``--likelihood-weight`` 0.25 / 0.5 / 1: 0.853 / 0.838 / 0.768).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from rlcomposer.feedback.selection import ActiveSelection
from rlcomposer.feedback.simulated_raters import simulate_ratings
from rlcomposer.feedback.store import open_store
from rlcomposer.music.melody import Melody
from rlcomposer.music.note_list import note_list
from rlcomposer.preferences.listeners import ListenerNoise, SimulatedListener, load_listener
from rlcomposer.preferences.personal_reward import (
    personal_scores,
    train_personal_reward_model,
)
from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig
from rlcomposer.preferences.reward_model import (
    RewardModelConfig,
    RewardModelError,
    load_training_data,
)
from rlcomposer.preferences.training import train_reward_model
from rlcomposer.prior.model import SHIPPED_PRIOR_DIR, MelodyCondition, load_prior

MEMBERS = {"report": [f"panel:{k}" for k in range(12, 24)] + ["lyrical", "rhythmic", "adventurous"],
           "choose": [f"panel:{k}" for k in range(12)]}
STEPS = 64


def sample(prior, count: int, generator: torch.Generator) -> list[Melody]:
    rows = []
    for start in range(0, count, 4096):
        rows += [Melody(row) for row in prior.sample(min(4096, count - start), STEPS, generator)]
    return rows


def log_likelihoods(prior, melodies: list[Melody]) -> np.ndarray:
    """The prior's log-likelihood of each melody (4 bars of 4/4 major, final not told)."""
    tokens = torch.as_tensor(np.stack([m.tokens for m in melodies])).long()
    with torch.no_grad():
        return np.concatenate([prior.log_likelihood(tokens[i:i + 4096], MelodyCondition("4/4", "major", STEPS))
                               .sum(-1).double().numpy() for i in range(0, len(tokens), 4096)])


def standardised_rows(values: np.ndarray) -> np.ndarray:
    """Each row less its mean, over its standard deviation (a constant row: zeros)."""
    centred = values - values.mean(axis=1, keepdims=True)
    spread = values.std(axis=1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    decided = truth != 0.5
    return float(np.mean((predicted[decided] > 0) == (truth[decided] == 1.0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", default="10,25,50", help="answers per rater, comma-separated")
    parser.add_argument("--members", choices=sorted(MEMBERS), default="report")
    parser.add_argument("--penalties", default=None,
                        help="L2 penalties of the personal weights to compare (default: the config's)")
    parser.add_argument("--quadratic", action="store_true", help="PersonalRewardConfig.quadratic")
    parser.add_argument("--pessimism", default=None,
                        help="best-of-N under the personal reward less k posterior standard deviations; "
                             "comma-separated k to compare (the first is the summary's; default: the config's)")
    parser.add_argument("--member-spread", default="0",
                        help="best-of-N under the personal reward less also m standard deviations of the population "
                             "ensemble's members (its own disagreement); comma-separated m to compare beside each "
                             "pessimism (the first pair is the summary's)")
    parser.add_argument("--likelihood-weight", default="0",
                        help="c of a regularised pick (RBoN-KL, Jinnai et al. 2024): the standardised score plus c x "
                             "the standardised prior log-likelihood, both over each melody's N candidates; "
                             "comma-separated c to compare beside each pessimism and member spread")
    parser.add_argument("--trunk", type=int, default=None, help="PersonalRewardConfig.trunk_hidden")
    parser.add_argument("--trunk-penalty", type=float, default=None, help="PersonalRewardConfig.trunk_penalty")
    parser.add_argument("--shared-rounds", default=None,
                        help="PersonalRewardConfig.shared_rounds values to compare (default: the config's)")
    parser.add_argument("--pool", type=int, default=400, help="pool melodies from the prior")
    parser.add_argument("--test-pairs", type=int, default=500)
    parser.add_argument("--best-of", type=int, default=54, help="N of best-of-N (0: the accuracy tables only)")
    parser.add_argument("--melodies", type=int, default=500, help="melodies per best-of-N win-rate")
    parser.add_argument("--selection", choices=("random", "active"), default="random",
                        help="how each rater's pairs are chosen after the first --answers budget: random, or active "
                             "(a study's selection: active: where the personal model trained on the answers so far is "
                             "least sure of that rater's taste)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior", default=str(SHIPPED_PRIOR_DIR))
    parser.add_argument("--out", required=True, help="folder for the study database and results.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.monotonic()
    budgets = sorted(int(b) for b in args.answers.split(","))
    default_penalty = PersonalRewardConfig().penalty
    penalties = [float(p) for p in args.penalties.split(",")] if args.penalties else [default_penalty]
    rounds = ([int(r) for r in args.shared_rounds.split(",")] if args.shared_rounds
              else [PersonalRewardConfig().shared_rounds])
    variants = [f"{p:g}/{r}" for p in penalties for r in rounds]  # penalty/shared rounds
    names = MEMBERS[args.members]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    prior = load_prior(args.prior)
    generator = torch.Generator().manual_seed(args.seed)
    pool = sample(prior, args.pool, generator)
    test = sample(prior, 2 * args.test_pairs, generator)
    test_a, test_b = test[:args.test_pairs], test[args.test_pairs:]
    db = out / f"study-{args.members}-{args.seed}.sqlite3"
    db.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{db}")
    store.add_melodies(pool, "pool", model="prior")
    rng = np.random.default_rng(args.seed)
    listeners, truths = {}, {}
    for name in names:
        function, label = load_listener(name)
        listener = SimulatedListener(function, label, ListenerNoise(), rng=np.random.default_rng(rng.integers(2**63)))
        listener.calibrate(pool)
        listeners[listener.rater_name] = listener
        truths[listener.rater_name] = listener.preferences(test_a, test_b)
    raters = list(listeners)
    config = RewardModelConfig(prior=args.prior, seed=args.seed)
    print(f"{len(raters)} raters ({args.members} members), pool {len(pool)}, {args.test_pairs} fresh test pairs, "
          f"answers {budgets} ({args.selection} selection after the first), penalties {penalties}", flush=True)

    results: dict = {"raters": raters, "budgets": budgets, "variants": variants, "tables": {}}
    have = 0
    model = None
    for budget in budgets:
        strategy = None
        if args.selection == "active" and model is not None:
            strategy = ActiveSelection(model, rng=np.random.default_rng(rng.integers(2**63)), tags=("pool",))
        for listener in listeners.values():
            simulate_ratings(store, listener, pairs=budget - have, tag="pool", strategy=strategy,
                             rng=np.random.default_rng(rng.integers(2**63)))
        have = budget
        data = load_training_data(store, tag="pool")
        model = train_personal_reward_model(data.comparisons, data.stars, config,
                                            PersonalRewardConfig(penalty=penalties[0], folds=0, seed=args.seed,
                                                                 quadratic=args.quadratic,
                                                                 shared_rounds=rounds[0],
                                                                 trunk_hidden=PersonalRewardConfig().trunk_hidden
                                                                 if args.trunk is None else args.trunk,
                                                                 trunk_penalty=PersonalRewardConfig().trunk_penalty
                                                                 if args.trunk_penalty is None else args.trunk_penalty),
                                            prior, log=None)
        population_test = model.population.score_batch(test)
        pop_delta = population_test[:args.test_pairs] - population_test[args.test_pairs:]
        _, phi = model.base_rewards(test)
        phi_delta = phi[:args.test_pairs] - phi[args.test_pairs:]
        weights = {f"{p:g}/{r}": model.fit_weights(data.comparisons, p, shared_rounds=r)
                   for p in penalties for r in rounds}
        model.weights = weights[variants[0]]
        rows = []
        for rater in raters:
            own = [c for c in data.comparisons if c.rater == rater]
            alone_config = replace(config, min_comparisons=5, cv_folds=0 if len(own) < 10 else 5)
            try:
                alone = train_reward_model(own, [], alone_config, prior, log=None).score_batch(test)
                alone_accuracy = accuracy(alone[:args.test_pairs] - alone[args.test_pairs:], truths[rater])
            except RewardModelError:
                alone_accuracy = float("nan")
            index = model.rater_index(rater)
            row = {"rater": rater, "answers": len(own),
                   "population": accuracy(pop_delta, truths[rater]), "alone": alone_accuracy,
                   "personal": {v: accuracy(pop_delta + phi_delta @ weights[v][index], truths[rater])
                                for v in variants}}
            rows.append(row)
        results["tables"][str(budget)] = rows
        print(f"\n### {budget} answers per rater ({len(data.comparisons)} in all; population held-out accuracy "
              f"{model.population.metrics['held_out']['accuracy']:.3f}; {time.monotonic() - started:.0f}s)\n")
        head = " | ".join(f"personal λ/shared {v}" for v in variants)
        print(f"| rater | population | alone | {head} |")
        print("| --- | ---: | ---: | " + " | ".join("---:" for _ in variants) + " |")
        for row in rows:
            cells = " | ".join(f"{row['personal'][v]:.3f}" for v in variants)
            print(f"| {row['rater']} | {row['population']:.3f} | {row['alone']:.3f} | {cells} |")
        for v in variants:
            gaps = np.array([row["personal"][v] - row["population"] for row in rows])
            mean_personal = np.mean([row["personal"][v] for row in rows])
            print(f"λ/shared {v}: mean accuracy personal {mean_personal:.3f}, population "
                  f"{np.mean([r['population'] for r in rows]):.3f}, alone {np.nanmean([r['alone'] for r in rows]):.3f}; "
                  f"personal within 0.02 of population or better for {int(np.sum(gaps >= -0.02))}/{len(rows)}",
                  flush=True)

    assert model is not None
    if args.best_of < 1:  # the accuracy tables only
        (out / f"results-{args.members}-{args.seed}.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"seconds: {time.monotonic() - started:.0f}")
        return 0
    # best-of-N at the largest N, with the first variant
    n, count = args.best_of, args.melodies
    print(f"\nbest-of-{n} at {budgets[-1]} answers (λ/shared {variants[0]}, pessimism {args.pessimism or PersonalRewardConfig().pessimism}): sampling {2 * n * count + count} "
          "prior melodies", flush=True)
    candidates = sample(prior, n * count, generator)
    pooled_candidates = sample(prior, n * count, generator)
    baseline = sample(prior, count, generator)
    population_scores, phi = model.base_rewards(candidates)
    member_spread = model.population.member_scores(candidates).std(axis=0)
    pooled_scores = standardised_rows(model.population.score_batch(pooled_candidates).reshape(count, n))
    wins = []
    shown = 0
    pessimisms = [float(k) for k in args.pessimism.split(",")] if args.pessimism else [PersonalRewardConfig().pessimism]
    spreads = [float(m) for m in args.member_spread.split(",")]
    likelihood_weights = [float(c) for c in args.likelihood_weight.split(",")]
    ks = [(k, m, c) for k in pessimisms for m in spreads for c in likelihood_weights]
    others: dict[tuple[float, float, float], list] = {k: [] for k in ks[1:]}  # (pessimism, member spread, c)
    likelihood_z = standardised_rows(log_likelihoods(prior, candidates).reshape(count, n))
    pooled_likelihood = log_likelihoods(prior, pooled_candidates)
    pooled_by_weight = {}  # the pooled model's melodies, picked the same way (c) as the rater's
    for c in likelihood_weights:
        picks = (pooled_scores + c * standardised_rows(pooled_likelihood.reshape(count, n))).argmax(axis=1)
        pooled_by_weight[c] = [pooled_candidates[i * n + int(j)] for i, j in enumerate(picks)]
    for rater in raters:
        index = model.rater_index(rater)
        listener = listeners[rater]
        for k in ks:
            pooled_melodies = pooled_by_weight[k[2]]
            pooled_vs_prior = float(listener.preferences(pooled_melodies, baseline).mean())
            scores = personal_scores(population_scores, phi, model.weights[index], model.covariances[index], k[0])
            scores = scores - k[1] * member_spread
            personal = (standardised_rows(scores.reshape(count, n)) + k[2] * likelihood_z).argmax(axis=1)
            made = [candidates[i * n + int(j)] for i, j in enumerate(personal)]
            row = {"rater": rater, "pessimism": k[0], "member_spread": k[1], "likelihood_weight": k[2],
                   "personal_vs_prior": float(listener.preferences(made, baseline).mean()),
                   "personal_vs_pooled": float(listener.preferences(made, pooled_melodies).mean()),
                   "pooled_vs_prior": pooled_vs_prior}
            if k == ks[0]:
                wins.append(row)
                if shown < 2:
                    print(f"a melody made for {rater}: {note_list(made[0])}")
                    shown += 1
            else:
                others[k].append(row)
    for k, rows_k in others.items():
        print(f"pessimism {k[0]:g}, member spread {k[1]:g}, c {k[2]:g}: median personal vs prior {np.median([r['personal_vs_prior'] for r in rows_k]):.3f}, "
              f"personal vs pooled >= 0.60 for {sum(r['personal_vs_pooled'] >= 0.60 for r in rows_k)}/{len(rows_k)} "
              f"(mean {np.mean([r['personal_vs_pooled'] for r in rows_k]):.3f})")
    results["best_of_n"] = wins
    results["best_of_n_other_pessimism"] = {f"{k[0]:g}/{k[1]:g}/{k[2]:g}": v for k, v in others.items()}
    print(f"\n| rater | personal best-of-{n} vs prior | pooled best-of-{n} vs prior | personal vs pooled |")
    print("| --- | ---: | ---: | ---: |")
    for row in wins:
        print(f"| {row['rater']} | {row['personal_vs_prior']:.3f} | {row['pooled_vs_prior']:.3f} "
              f"| {row['personal_vs_pooled']:.3f} |")
    (out / f"results-{args.members}-{args.seed}.json").write_text(json.dumps(results, indent=2) + "\n")

    print()
    low = str(budgets[0])
    for v in variants:
        gaps = np.array([row["personal"][v] - row["population"] for row in results["tables"][low]])
        print(f"cold_start_within_0.02_at_{low}_lambda/shared_{v}: {int(np.sum(gaps >= -0.02))}/{len(gaps)}")
        top = results["tables"][str(budgets[-1])]
        print(f"mean_personal_accuracy_at_{budgets[-1]}_lambda/shared_{v}: "
              f"{np.mean([r['personal'][v] for r in top]):.3f}")
    print(f"median_personal_vs_prior: {np.median([w['personal_vs_prior'] for w in wins]):.3f}")
    print(f"personal_beats_pooled_0.60: {sum(w['personal_vs_pooled'] >= 0.60 for w in wins)}/{len(wins)}")
    print(f"mean_personal_vs_pooled: {np.mean([w['personal_vs_pooled'] for w in wins]):.3f}")
    print(f"seconds: {time.monotonic() - started:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
