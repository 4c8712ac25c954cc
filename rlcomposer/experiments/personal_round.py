"""Melodies made for each rater: a round of an experiment with ``personal: true``.

The loop (:mod:`rlcomposer.experiments.loop`) stays the orchestrator; this module holds what
differs when a round makes melodies for each rater of a study:

* :func:`rater_listeners` and :func:`answer_as_raters`: the simulated listeners of the config's
  ``raters``, each answering ``comparisons_per_round`` random pairs of the round's pool as its
  own rater (``sim:NAME``), with its own seeded generator (with ``listener: people`` the loop
  waits for answers as it always does, and every rater with answers counts);
* :class:`PersonalRewardTrainer`: the reward-trainer role, a
  :class:`~rlcomposer.preferences.personal_reward.PersonalRewardModel` (the population
  ensemble and per-rater weights) fitted on everyone's answers, saved to ``round-K/reward_model/``;
* :func:`personal_round`: for each rater who answered, best-of-N from the prior under that
  rater's reward (N from the tune config's ``kl_target``, picked by the ``best-of-n`` tuner
  itself), exported to ``round-K/raters/FOLDER/melodies/``, and best-of-N under the population's
  reward exported once to ``round-K/melodies/``; for simulated raters, each rater's noiseless
  preference judges their melodies against the prior's and head to head against the
  population's, through :func:`~rlcomposer.experiments.evaluation.evaluate_samples`.

Sampling the prior is the cost, so the raters pick from one shared set of candidates (N a
melody; each pick is best-of-N from the prior all the same) and their base rewards are computed
once; the population picks from a set of its own, so that a rater's melodies and the
population's are independent draws when they meet head to head.

No policy is tuned per rater: a PPO policy alone trails best-of-N at equal KL, and one PPO
run per rater would cost minutes each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.experiments.evaluation import evaluate_samples, format_evaluation
from rlcomposer.experiments.experiment_config import ExperimentConfig, RoundResult
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.note_list import note_list
from rlcomposer.preferences.listeners import SimulatedListener, load_listener
from rlcomposer.preferences.personal_reward import (
    PersonalRewardModel,
    personal_scores,
    save_personal_reward_model,
    train_personal_reward_model,
)
from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig
from rlcomposer.preferences.reward_model_config import RewardModelConfig
from rlcomposer.prior.generation import export_melodies
from rlcomposer.prior.model import MelodyCondition
from rlcomposer.prior.registry import PriorModel
from rlcomposer.rl.best_of_n import best_of_each
from rlcomposer.rl.tuners import BEST_OF_N, make_tuner

RATERS_DIR = "raters"
"""``round-K/raters/FOLDER/melodies/``: the melodies made for each rater."""


def rater_listeners(config: ExperimentConfig, reference: list[Melody]) -> dict[str, SimulatedListener]:
    """The simulated listeners of ``config.raters`` by rater name (``sim:NAME``), each with its own
    seeded generator and calibrated on ``reference`` (prior melodies)."""
    listeners = {}
    for position, spec in enumerate(config.raters):
        function, name = load_listener(spec)
        listener = SimulatedListener(function, name, config.noise,
                                     rng=np.random.default_rng([config.seed, 1, position]))
        listener.calibrate(reference)
        listeners[listener.rater_name] = listener
    return listeners


def answer_as_raters(store, listeners: dict[str, SimulatedListener], config: ExperimentConfig,
                     index: int) -> list[str]:
    """Each listener answers the round's pairs it still owes (``comparisons_per_round``, random
    pairs of the round's pool) as its own rater; one log line per listener that answered."""
    from rlcomposer.feedback.simulated_raters import simulate_ratings

    tag = config.tag(index)
    stored = [c for c in store.comparisons([tag]) if c.choice != "skip"]
    lines = []
    for position, (name, listener) in enumerate(listeners.items()):
        rater = store.sign_in(name, kind="simulated")
        need = config.comparisons_per_round - sum(c.rater_id == rater.id for c in stored)
        if need <= 0:
            continue
        counts = simulate_ratings(store, listener, pairs=need, tag=tag,
                                  rng=np.random.default_rng([config.seed, 10 + index, position]))
        lines.append(f"  ratings: {name} answered {counts.get('comparisons', need)} comparisons "
                     f"({counts.get('a', 0)} A, {counts.get('b', 0)} B, {counts.get('tie', 0)} ties)")
    return lines


def raters_with_answers(store, tag: str) -> int:
    """How many raters gave a comparison (not a skip) on ``tag``."""
    return len({c.rater_id for c in store.comparisons([tag]) if c.choice != "skip"})


@dataclass
class PersonalRewardTrainer:
    """The reward trainer of ``personal: true``: a personal reward model on everyone's answers."""

    config: RewardModelConfig
    personal: PersonalRewardConfig = field(default_factory=PersonalRewardConfig)
    prior: Any = "prior"
    """The prior the population ensemble's encoder starts from (a MelodyPrior or a directory)."""

    def train(self, comparisons, stars, out_dir, log) -> PersonalRewardModel:
        model = train_personal_reward_model(comparisons, stars, self.config, self.personal, prior=self.prior,
                                            log=log)
        save_personal_reward_model(model, out_dir)
        return model


def rater_folder(name: str, taken: set[str]) -> str:
    """A folder name for rater ``name`` (letters, digits, ``.``, ``_`` and ``-``), unique in ``taken``."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "rater"
    unique, count = folder, 1
    while unique.casefold() in taken:
        count += 1
        unique = f"{folder}-{count}"
    taken.add(unique.casefold())
    return unique


@dataclass
class PersonalRound:
    """What one personal round needs from the loop."""

    config: ExperimentConfig
    prior: PriorModel
    condition: MelodyCondition
    num_steps: int
    round_dir: Path
    listeners: dict[str, SimulatedListener] | None
    """The simulated raters by rater name; None when people rate."""
    log: Callable[[str], None] = print


def _export(melodies: list[Melody], config: ExperimentConfig, condition: MelodyCondition, out_dir: Path) -> None:
    key = Key(config.key, condition.mode)
    export_melodies([m.in_key(key) for m in melodies[: config.export_melodies]], out_dir,
                    ("midi", "musicxml", "wav", "json"), stem="tuned")


def personal_round(setup: PersonalRound, model: PersonalRewardModel, index: int, num_comparisons: int,
                   reward_seconds: float, rng: np.random.Generator) -> RoundResult:
    """Best-of-N for each rater and for the population, exported and judged (module docstring)."""
    config, prior, condition, steps = setup.config, setup.prior, setup.condition, setup.num_steps
    tuner = make_tuner(BEST_OF_N, config.tune_config(None, index))
    population_reward, _ = model.for_rater(None)
    population_model = tuner.tune(prior.prior, population_reward, [], condition, setup.round_dir,
                                  lambda message: setup.log(f"  {message}"))
    n, kl = population_model.model.n, float(population_model.kl_per_melody)
    size = min(config.evaluation_pairs, max(config.best_of_n_budget // n, 16))
    base = prior.sample(size, steps, rng, condition=condition)
    population = population_model.model.sample(size, steps, rng, condition=condition)
    population_name = f"population best-of-{n}"
    measured = evaluate_samples({"prior": base, population_name: population}, prior.prior, "prior",
                                kl={"prior": 0.0, population_name: kl}, reward_fn=population_reward,
                                descriptions={"prior": "the prior", population_name: f"the {population_name} melodies"})
    _export(population, config, condition, setup.round_dir / "melodies")
    candidates = prior.sample(size * n, steps, rng, condition=condition)  # the raters' shared candidates
    population_scores, phi = model.base_rewards(candidates)
    rows: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for rater, answers in zip(model.raters, model.answers, strict=True):
        if answers == 0:
            continue
        reward, _ = model.for_rater(rater)
        row = model.rater_index(rater)
        made = best_of_each(candidates, personal_scores(population_scores, phi, model.weights[row],
                                                        model.covariances[row], model.config.pessimism), n)
        listener = (setup.listeners or {}).get(rater)
        preference = listener.preferences if listener is not None else None
        judged = {r.name: r for r in evaluate_samples(
            {"prior": base, "made": made, "population": population}, prior.prior, "prior",
            kl={"prior": 0.0, "made": kl, "population": kl}, reward_fn=reward, preference_fn=preference)}
        # the rater's noiseless preference, pair by pair, for their melodies over the population's
        head_to_head = None if preference is None else float(np.mean(preference(made, population)))
        folder = rater_folder(rater, taken)
        _export(made, config, condition, setup.round_dir / RATERS_DIR / folder / "melodies")
        rows[rater] = {"answers": answers, "folder": f"{RATERS_DIR}/{folder}", "best_of": n, "kl": kl,
                       "vs_prior": judged["made"].win_rate, "vs_population": head_to_head,
                       "population_vs_prior": judged["population"].win_rate,
                       "personal_reward": {"made": judged["made"].mean_reward,
                                           "population": judged["population"].mean_reward,
                                           "prior": judged["prior"].mean_reward},
                       "style_overlap": judged["made"].style.style_overlap,
                       "examples": [note_list(m) for m in made[:2]]}
        won = ("" if head_to_head is None else
               f": {judged['made'].win_rate:.1%} vs the prior, {head_to_head:.1%} vs the population's")
        setup.log(f"  made for {rater} ({answers} answers){won}")
    warnings = [warning for result in measured for warning in result.collapse_warnings]
    for warning in warnings:
        setup.log(f"  WARNING: {warning}")
    metrics = dict(model.metrics)
    metrics["held_out"] = model.population.metrics.get("held_out", {})
    return RoundResult(
        round=index, comparisons=num_comparisons, reward_model=metrics, win_rate=None, best_of_n_win_rate=None,
        best_of_n=n, kl_tuned=kl, kl_best_of_n=kl,
        proxy_reward={r.name: r.mean_reward for r in measured}, gold_score={},
        metrics={r.name: r.metrics.as_dict() for r in measured},
        metrics_table=format_evaluation(measured, with_warnings=False), tune_seconds=0.0,
        reward_seconds=reward_seconds, musicality={r.name: r.style.as_dict() for r in measured},
        collapse_warnings=warnings, tuned_best_of=n, raters=rows)


__all__ = ["RATERS_DIR", "PersonalRewardTrainer", "PersonalRound", "answer_as_raters", "personal_round",
           "rater_folder", "rater_listeners", "raters_with_answers"]
