"""``rlcomposer experiment run``: the whole loop, in rounds.

Each round: sample a pool from the current policy (the prior in round 0) under
the round's tag; collect comparisons (a simulated listener answers at once;
people rate in the app while the run waits, resumable); train the reward model
on every comparison of the experiment so far; tune with PPO from the prior
against it; evaluate against the prior with the listener's noiseless
preference, beside best-of-N sampling at the same KL.

A run folder ``runs/NAME/`` holds ``config.yaml`` (resolved), ``state.json``
(where a resumed run picks up), ``feedback.sqlite`` (unless ``--db`` is
given), ``round-K/`` (reward model, tuned policy with its TensorBoard logs,
checkpoints and curves, melodies as MIDI / MusicXML / WAV / JSON), ``plots/``
and ``report.md``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from rlcomposer.config import config_to_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.experiments.evaluation import evaluate_samples, format_evaluation, kl_to_prior
from rlcomposer.experiments.experiment_config import (
    PEOPLE,
    POLICY_BEST_OF_K,
    STATE_FILE,
    ExperimentConfig,
    RoundResult,
    load_experiment_config,
)
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.note_list import note_list
from rlcomposer.preferences.reward_model import RewardModelConfig
from rlcomposer.prior.generation import export_melodies
from rlcomposer.prior.model import MelodyPrior
from rlcomposer.prior.registry import MelodyModel, PriorModel, resolve_model
from rlcomposer.rl.best_of_n import (
    BestOfNModel,
    PolicyBestOfKModel,
    pick_kl_weight_for_target,
    record_pick,
)
from rlcomposer.rl.kl import best_of_n_for_kl
from rlcomposer.rl.tuners import BEST_OF_N, TunedModel, Tuner, make_tuner


class ExperimentWaiting(Exception):
    """People have not yet given the comparisons a round needs."""


class RewardTrainer(Protocol):
    """Learns a reward model from the experiment's ratings (imitation's reward-trainer role)."""

    def train(self, comparisons: list, stars: list, out_dir: Path, log: Callable[[str], None]):
        """Train on ``comparisons`` and ``stars``, save into ``out_dir``; return the ensemble."""


class PairSelector(Protocol):
    """Which pairs a simulated listener is asked about in a round."""

    def strategy(self, round_index: int, tag: str, previous_ensemble):
        """A :class:`~rlcomposer.feedback.selection.SelectionStrategy` for the round."""


@dataclass
class EnsembleRewardTrainer:
    """The default reward trainer: the reward-model ensemble of :mod:`rlcomposer.preferences.reward_model`."""

    config: RewardModelConfig
    prior: Any = "prior"
    """The prior the reward model's encoder starts from: a MelodyPrior (the experiment's own)
    or a model directory / ``prior``."""

    def train(self, comparisons, stars, out_dir, log):
        from rlcomposer.preferences.reward_model import save_reward_model, train_reward_model

        ensemble = train_reward_model(comparisons, stars, self.config, prior=self.prior, log=log)
        save_reward_model(ensemble, out_dir)
        return ensemble


@dataclass
class ConfiguredPairSelector:
    """Random pairs, or (from round 1 with strategy ``active``) where the last ensemble disagrees most."""

    strategy_name: str
    seed: int

    def strategy(self, round_index, tag, previous_ensemble):
        from rlcomposer.feedback.selection import ActiveSelection, RandomSelection

        if self.strategy_name == "active" and round_index > 0 and previous_ensemble is not None:
            return ActiveSelection(previous_ensemble, rng=np.random.default_rng(self.seed + round_index),
                                   tags=(tag,))
        return RandomSelection(repeat_share=0.0, tags=(tag,), seed=self.seed + round_index)


class Experiment:
    r"""The loop over rounds, with its state on disk so that a run can resume.

    Its roles are passed in, in the style of imitation's ``PreferenceComparisons``,
    and default to what the config says: ``prior`` (the model that writes
    round 0's pool and the baseline; default the shipped prior), ``listener``
    (a calibrated :class:`~rlcomposer.preferences.listeners.SimulatedListener`,
    or None when people rate: ``listener: people``), ``selector`` (a
    :class:`PairSelector`), ``reward_trainer`` (a :class:`RewardTrainer`) and
    ``tuners`` (:class:`~rlcomposer.rl.tuners.Tuner`\ s, the round's tuned policy first;
    default: the config's ``tuners``). A test or a user swaps any of them. The one
    prior network reaches every role: the reward model's encoder starts from it,
    every tuner tunes it, and KL and best-of-N are measured against it.
    """

    def __init__(self, config: ExperimentConfig, run_dir: str | Path, db_url: str | None = None,
                 log: Callable[[str], None] = print, progress: bool = True, *,
                 prior: PriorModel | MelodyPrior | None = None, listener=None,
                 selector: PairSelector | None = None, reward_trainer: RewardTrainer | None = None,
                 tuners: list[Tuner] | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.log = log
        self.progress = progress
        self.state: dict[str, Any] = read_run_state(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url or f"sqlite:///{(self.run_dir / 'feedback.sqlite').resolve()}"
        self.state_path = self.run_dir / STATE_FILE
        if isinstance(prior, MelodyPrior):
            prior = PriorModel(prior, "prior")
        self._prior_model = prior
        self.listener = listener
        self._pick_weights: dict[MelodyPrior, float] = {}
        """Policy + best-of-k's pick weight per tuned policy network (each round's its own), once found
        (``policy_pick_holds_kl``)."""
        self.rater_listeners: dict | None = None
        """With ``personal: true`` and simulated raters: their listeners by rater name."""
        self.selector = selector or ConfiguredPairSelector(config.strategy, config.seed)
        self._reward_trainer = reward_trainer
        self._tuners = tuners

    # ---- set-up ---------------------------------------------------------
    def _save_state(self) -> None:
        self.state["db_url"] = self.db_url
        self.state_path.write_text(json.dumps(self.state, indent=2, default=str) + "\n")

    def _write_config(self) -> None:
        (self.run_dir / "config.yaml").write_text(
            yaml.safe_dump(config_to_dict(self.config), sort_keys=False), encoding="utf-8")

    @property
    def prior_model(self) -> PriorModel:
        if self._prior_model is None:
            self._prior_model = resolve_model("prior")
        return self._prior_model

    @property
    def reward_trainer(self) -> RewardTrainer:
        if self._reward_trainer is None and self.config.personal:
            from rlcomposer.experiments.personal_round import PersonalRewardTrainer
            from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig

            self._reward_trainer = PersonalRewardTrainer(self.config.reward_model_config(),
                                                         PersonalRewardConfig(folds=0, seed=self.config.seed),
                                                         prior=self.prior_model.prior)
        if self._reward_trainer is None:
            self._reward_trainer = EnsembleRewardTrainer(self.config.reward_model_config(),
                                                         prior=self.prior_model.prior)
        return self._reward_trainer

    def tuners(self, round_index: int, reward_dir: Path | None = None) -> list[Tuner]:
        """The round's tuners: those passed in, or the config's (seeded by the round, their
        config naming the round's reward model)."""
        if self._tuners is not None:
            return list(self._tuners)
        reward = None if reward_dir is None else str(reward_dir)
        whole, policies = (self.config.tune_config(reward, round_index),
                           self.config.policy_tune_config(reward, round_index))
        return [make_tuner(name, whole if name == BEST_OF_N else policies, self.progress)
                for name in self.config.tuner_names]

    @property
    def listener_fn(self):
        """The listener's own score function (its noiseless taste), or None when people rate."""
        return None if self.listener is None else self.listener.score_fn

    def _set_up_listener(self) -> None:
        if self.config.listener == PEOPLE or self.listener is not None or self.rater_listeners is not None:
            return
        from rlcomposer.preferences.listeners import SimulatedListener, load_listener

        reference = self.prior_model.sample(1000, self._num_steps, np.random.default_rng(self.config.seed + 2),
                                            condition=self._condition)
        if self.config.personal:  # several raters, each its own listener
            from rlcomposer.experiments.personal_round import rater_listeners

            self.rater_listeners = rater_listeners(self.config, reference)
            return
        score_fn, name = load_listener(self.config.listener)
        self.listener = SimulatedListener(score_fn, name, self.config.noise,
                                          rng=np.random.default_rng(self.config.seed + 1))
        self.listener.calibrate(reference)

    @property
    def _num_steps(self) -> int:
        return self.config.tune_config().episode_steps

    @property
    def _condition(self):
        """The melodies' metre, mode and length (the tune config's): one experiment has one."""
        return self.config.tune_config().env.condition

    # ---- the loop -------------------------------------------------------
    def run(self) -> list[RoundResult]:
        """Run (or resume) every round; raises ExperimentWaiting when people must rate first."""
        from rlcomposer.feedback.store import open_store

        self._write_config()
        self._set_up_listener()
        store = open_store(self.db_url)
        while self.state["round"] < self.config.rounds:
            index = self.state["round"]
            self.log(f"round {index}: pool, ratings, reward model, tuning, evaluation")
            self._add_pool(store, index)
            self._collect_comparisons(store, index)
            result = self._train_tune_evaluate(store, index)
            self.state["results"].append(asdict(result))
            self.state["round"] = index + 1
            self._save_state()
            self.write_report()
        if self.config.listener == PEOPLE:
            # the last tuned policy's melodies, so that people can judge it against the prior's
            # pool in the app (RLCOMPOSER_POOL_TAGS=NAME/round-0,NAME/round-R, RLCOMPOSER_MIX_TAGS=1)
            self._add_pool(store, self.config.rounds)
        return [RoundResult(**r) for r in self.state["results"]]

    def _round_dir(self, index: int) -> Path:
        return self.run_dir / f"round-{index}"

    def _policy_model(self, index: int) -> MelodyModel:
        """What writes round ``index``'s pool: the prior, then the last round's tuned melodies
        (best-of-N under its reward model, or its tuned policy; see ``tuned_melodies``)."""
        if index == 0:
            return self.prior_model
        previous = self._round_dir(index - 1)
        if self.config.tuned_melodies == "best-of-n" or self.config.personal:
            from rlcomposer.preferences.reward_model_cache import load_reward_model_cached

            earlier = self.state["results"][index - 1]
            n = earlier.get("tuned_best_of") or earlier["best_of_n"]
            # personal: the population's best-of-N (its ensemble is the model's population/ folder)
            reward_dir = previous / "reward_model" / ("population" if self.config.personal else "")
            model = BestOfNModel(self.prior_model, load_reward_model_cached(reward_dir), n, "reward model")
            model.name = f"{self.config.name}/round-{index - 1}/best-of-{n}"
            return model
        model = resolve_model(str(previous / "policy"))
        model.name = f"{self.config.name}/round-{index - 1}/policy"
        if self.config.tuned_melodies == POLICY_BEST_OF_K:
            from rlcomposer.preferences.reward_model_cache import load_reward_model_cached

            k = self.config.policy_best_of_k
            weight = self.state["results"][index - 1].get("tuned_pick_kl_weight")
            model = PolicyBestOfKModel(model.prior, self.prior_model.prior,
                                       load_reward_model_cached(previous / "reward_model"), k, "reward model",
                                       model.name, self.config.policy_pick_kl_weight if weight is None else weight)
            model.name = f"{self.config.name}/round-{index - 1}/policy+best-of-{k}"
        return model

    def _add_pool(self, store, index: int) -> None:
        if self.state.get("pool_added") == index:
            return
        model = self._policy_model(index)
        melodies = model.sample(self.config.pool_size, self._num_steps,
                                np.random.default_rng(self.config.seed * 1000 + index),
                                condition=self._condition)
        melodies = [m.with_metadata(seed=self.config.seed, index=i) for i, m in enumerate(melodies)]
        result = store.add_melodies(melodies, self.config.tag(index), model=model.name,
                                    model_kind="prior" if index == 0 else "policy",
                                    model_path=None if index == 0 or self.config.tuned_melodies != "policy" else
                                    str((self._round_dir(index - 1) / "policy").resolve()),
                                    experiment=self.config.name)
        self.log(f"  pool: {result.added} melodies under tag '{self.config.tag(index)}'")
        self.state["pool_added"] = index
        self._save_state()

    def _comparison_count(self, store, index: int) -> int:
        return sum(c.choice != "skip" for c in store.comparisons([self.config.tag(index)]))

    def _collect_comparisons(self, store, index: int) -> None:
        have = self._comparison_count(store, index)
        need = self.config.comparisons_per_round - have
        if self.config.personal and self.config.listener != PEOPLE:
            from rlcomposer.experiments.personal_round import answer_as_raters

            for line in answer_as_raters(store, self.rater_listeners or {}, self.config, index):
                self.log(line)
            return
        if self.config.personal and self.config.listener == PEOPLE:
            from rlcomposer.experiments.personal_round import raters_with_answers

            if raters_with_answers(store, self.config.tag(index)) < 2:  # a personal model needs two
                need = max(need, 1)
        if need <= 0:
            return
        if self.config.listener == PEOPLE:
            from rlcomposer.feedback.study import StudySpec, ensure_study, study_url

            self._save_state()
            active = self.config.strategy == "active" and index > 0
            study = ensure_study(store, StudySpec(  # the study this round's ratings come from
                name=self.config.tag(index), pool_tags=(self.config.tag(index),), mode="pairs",
                selection="active" if active else "random",
                reward_model=str((self._round_dir(index - 1) / "reward_model").resolve()) if active else None))
            raise ExperimentWaiting(
                f"round {index} has {have} of {self.config.comparisons_per_round} comparisons"
                f"{' (from at least 2 raters)' if self.config.personal else ''} on tag "
                f"'{self.config.tag(index)}': start the app (rlcomposer app --db {self.db_url}) and send raters "
                f"to the study {study.name}, {study_url(study.name)}; then run "
                f"`rlcomposer experiment resume {self.run_dir}`")
        from rlcomposer.feedback.simulated_raters import simulate_ratings

        previous = None
        if index > 0:  # the same model the pool was drawn with: loaded once (cached per directory)
            from rlcomposer.preferences.reward_model_cache import load_reward_model_cached

            previous = load_reward_model_cached(self._round_dir(index - 1) / "reward_model")
        strategy = self.selector.strategy(index, self.config.tag(index), previous)
        counts = simulate_ratings(store, self.listener, pairs=need, tag=self.config.tag(index),
                                  strategy=strategy, rng=np.random.default_rng(self.config.seed + 10 + index))
        self.log(f"  ratings: {self.listener.rater_name} answered {counts.get('comparisons', need)} comparisons "
                 f"({counts.get('a', 0)} A, {counts.get('b', 0)} B, {counts.get('tie', 0)} ties)")

    def _train_tune_evaluate(self, store, index: int) -> RoundResult:
        from rlcomposer.preferences.reward_model import load_training_data

        round_dir = self._round_dir(index)
        comparisons, stars = [], []
        for earlier in range(index + 1):
            data = load_training_data(store, tag=self.config.tag(earlier))
            comparisons += data.comparisons
            stars += data.stars
        started = time.monotonic()
        reward_dir = round_dir / "reward_model"
        ensemble = self.reward_trainer.train(comparisons, stars, reward_dir, lambda message: self.log(f"  {message}"))
        reward_seconds = time.monotonic() - started
        store.register_model(f"{self.config.name}/round-{index}/reward-model", kind="reward-model",
                             config={"experiment": self.config.name, "round": index,
                                     "metrics": ensemble.metrics.get("held_out", {})},
                             path=str(reward_dir.resolve()))
        if self.config.personal:  # melodies made for each rater: best-of-N, no policy
            from rlcomposer.experiments.personal_round import PersonalRound, personal_round

            setup = PersonalRound(self.config, self.prior_model, self._condition, self._num_steps, round_dir,
                                  self.rater_listeners, self.log)
            return personal_round(setup, ensemble, index, len(comparisons), reward_seconds,
                                  np.random.default_rng(self.config.seed + 100 + index))
        tuned_models = []
        for position, tuner in enumerate(self.tuners(index, reward_dir)):
            out_dir = round_dir / ("policy" if position == 0 else f"policy-{tuner.name}")
            self.log(f"  tuning: {tuner.name}")
            tuned = tuner.tune(self.prior_model.prior, ensemble, comparisons, self._condition, out_dir,
                               lambda message: self.log(f"  {message}"), gold_fn=self.listener_fn)
            tuned_models.append(tuned)
            if tuned.directory is not None:
                store.register_model(f"{self.config.name}/round-{index}/{out_dir.name}", kind="policy",
                                     config={"experiment": self.config.name, "round": index,
                                             "tuner": tuner.name}, path=str(tuned.directory.resolve()))
        tune_seconds = sum(t.seconds for t in tuned_models)
        self.log(f"  tuned in {tune_seconds:.0f} s; evaluating")
        return self._evaluate(index, ensemble, tuned_models, len(comparisons), reward_seconds, tune_seconds)

    # ---- evaluation -----------------------------------------------------
    def _sample_timed(self, model: MelodyModel, n: int, rng: np.random.Generator) -> tuple[list[Melody], float]:
        """``n`` melodies of the experiment's shape, and the melodies made per second."""
        started = time.monotonic()
        melodies = model.sample(n, self._num_steps, rng, condition=self._condition)
        return melodies, n / max(time.monotonic() - started, 1e-9)

    def _measure(self, samples: dict[str, list[Melody]], kl: dict[str, float], ensemble,
                 descriptions: dict[str, str] | None = None) -> dict[str, Any]:
        """Every column measured by the one evaluator (:func:`evaluate_samples`) against "prior"."""
        listening = self.listener is not None
        results = evaluate_samples(samples, self.prior_model.prior, "prior", kl=kl, reward_fn=ensemble,
                                   listener_fn=self.listener.score_fn if listening else None,
                                   preference_fn=self.listener.preferences if listening else None,
                                   descriptions=descriptions)
        return {result.name: result for result in results}

    def _judge(self, name: str, melodies: list[Melody], kl: float, base: list[Melody], ensemble,
               rng: np.random.Generator, melodies_per_second: float, seconds: float,
               with_best_of_n: bool = True) -> dict[str, Any]:
        """One tuned model's row: win-rate, KL, best-of-N at that KL, musicality, cost."""
        judged = self._measure({"prior": base, name: melodies}, {name: kl}, ensemble)[name]
        row: dict[str, Any] = {"name": name, "kl": kl, "win_rate": judged.win_rate, "best_of_n": None,
                               "best_of_n_win_rate": None, "tune_seconds": seconds,
                               "melodies_per_second": melodies_per_second, "proxy_reward": judged.mean_reward}
        if with_best_of_n:
            n = self.config.best_of_n or best_of_n_for_kl(kl, self.config.best_of_n_cap)
            size = min(len(base), max(self.config.best_of_n_budget // n, 16))
            best = BestOfNModel(self.prior_model, ensemble, n, "reward model").sample(
                size, self._num_steps, rng, condition=self._condition)
            row["best_of_n"] = n
            if self.listener is not None:
                row["best_of_n_win_rate"] = self._win_rate(best, base[:size])
        row["musicality"] = judged.style.as_dict()
        row["examples"] = [note_list(m) for m in melodies[:3]]
        return row

    def _evaluate(self, index: int, ensemble, tuned_models: list[TunedModel], num_comparisons: int,
                  reward_seconds: float, tune_seconds: float) -> RoundResult:
        round_dir = self._round_dir(index)
        n = self.config.evaluation_pairs
        rng = np.random.default_rng(self.config.seed + 100 + index)
        prior = self.prior_model
        primary = tuned_models[0]
        policy_melodies, _ = self._sample_timed(primary.model, self._evaluation_size(primary, n), rng)
        base = prior.sample(n, self._num_steps, rng, condition=self._condition)
        kl_policy = (primary.kl_per_melody if primary.kl_per_melody is not None
                     else float(kl_to_prior(primary.model, prior.prior, policy_melodies)))
        # "tuned" is what writes the round's tuned melodies: the policy, or its best of k
        tuned, kl_tuned, tuned_name, pick_weight = policy_melodies, kl_policy, primary.name, None
        if self.config.tuned_melodies == POLICY_BEST_OF_K and primary.policy is not None:
            mode = self._policy_best_of_k(primary, ensemble)
            tuned = mode.sample(self._evaluation_size(TunedModel("", mode), n), self._num_steps, rng,
                                condition=self._condition)
            kl_tuned, tuned_name, pick_weight = mode.kl_estimate(tuned), mode.name, mode.kl_weight
            if (round_dir / "policy").is_dir():  # generate --model POLICY --best-of k --reward RM picks alike
                record_pick(round_dir / "policy", mode.n, pick_weight, self.config.tune_config().kl_target,
                            round_dir / "reward_model")
        best_n = self.config.best_of_n or best_of_n_for_kl(kl_tuned, self.config.best_of_n_cap)
        best_model = BestOfNModel(prior, ensemble, best_n, "reward model")
        # best-of-N draws N candidates a melody: a large N is judged on fewer melodies (the budget)
        n_best = min(n, max(self.config.best_of_n_budget // best_n, 16))
        best = best_model.sample(n_best, self._num_steps, rng, condition=self._condition)
        best_name = f"best-of-{best_n}"
        columns = {"prior": base, "tuned": tuned, best_name: best}
        measured = self._measure(
            columns, {"prior": 0.0, "tuned": kl_tuned, best_name: best_model.kl_to_base_per_melody}, ensemble,
            descriptions={"prior": "the prior", "tuned": f"the tuned ({tuned_name}) melodies",
                          best_name: f"the {best_name} melodies"})
        proxy = {name: measured[name].mean_reward for name in columns}
        gold = {name: measured[name].listener_score for name in columns} if self.listener is not None else {}
        win_rate, best_win_rate = measured["tuned"].win_rate, measured[best_name].win_rate
        if self.listener is not None:
            ensemble.metrics["noiseless_accuracy"] = self._reward_model_accuracy(ensemble, base)
        tuner_rows = self._tuner_rows(tuned_models, (policy_melodies, kl_policy),
                                      {tuned_name: (tuned, kl_tuned, best_win_rate, best_n)}, base, ensemble, rng)
        difficulty = None
        if self.listener is not None and self.config.difficulty_best_of > 1:
            hard = BestOfNModel(prior, ensemble, self.config.difficulty_best_of, "reward model")
            size = min(n, max(self.config.best_of_n_budget // self.config.difficulty_best_of, 16))
            difficulty = self._win_rate(hard.sample(size, self._num_steps, rng, condition=self._condition),
                                        base[:size])
        warnings = [warning for result in measured.values() for warning in result.collapse_warnings]
        for warning in warnings:
            self.log(f"  WARNING: {warning}")
        table = format_evaluation(list(measured.values()), with_warnings=False)
        chosen, tuned_best_of = (best, best_n) if self.config.tuned_melodies == "best-of-n" else (tuned, None)
        own = next((t for t in tuned_models if t.policy is None and isinstance(t.model, BestOfNModel)), None)
        if self.config.tuned_melodies == "best-of-n" and own is not None:  # N from its own KL target
            chosen = own.model.sample(self.config.export_melodies, self._num_steps, rng, condition=self._condition)
            tuned_best_of = own.model.n
        target_key = Key(self.config.key, self._condition.mode)
        export_melodies([m.in_key(target_key) for m in chosen[: self.config.export_melodies]],
                        round_dir / "melodies",
                        ("midi", "musicxml", "wav", "json"), stem="tuned")
        history = primary.history
        self.log(f"  win-rate of tuned ({tuned_name}) over prior: "
                 f"{win_rate if win_rate is None else f'{win_rate:.1%}'}; "
                 f"best-of-{best_n}: {best_win_rate if best_win_rate is None else f'{best_win_rate:.1%}'}; "
                 f"KL {kl_tuned:.2f} nats")
        return RoundResult(
            round=index, comparisons=num_comparisons, reward_model=ensemble.metrics,
            win_rate=win_rate, best_of_n_win_rate=best_win_rate, best_of_n=best_n, kl_tuned=kl_tuned,
            kl_best_of_n=best_model.kl_to_base_per_melody, proxy_reward=proxy, gold_score=gold,
            metrics={name: result.metrics.as_dict() for name, result in measured.items()}, metrics_table=table,
            tune_seconds=tune_seconds, reward_seconds=reward_seconds,
            overoptimisation=[{k: h[k] for k in ("timesteps", "kl_per_melody", "reward_reward", "gold")
                               if k in h} for h in history if "kl_per_melody" in h],
            musicality={name: result.style.as_dict() for name, result in measured.items()},
            collapse_warnings=warnings, difficulty_win_rate=difficulty, tuners=tuner_rows,
            tuned_best_of=tuned_best_of, tuned_pick_kl_weight=pick_weight,
        )

    def _evaluation_size(self, tuned: TunedModel, n: int) -> int:
        """Melodies a tuned model is judged on: ``evaluation_pairs``, fewer for a large best-of-N."""
        best_of = getattr(tuned.model, "n", 1)
        return min(n, max(self.config.best_of_n_budget // best_of, 16))

    def _policy_best_of_k(self, tuned: TunedModel, ensemble) -> PolicyBestOfKModel:
        """Best-of-k (``policy_best_of_k``) of a tuned policy's melodies under the reward model."""
        k, weight = self.config.policy_best_of_k, self.config.policy_pick_kl_weight
        target = self.config.tune_config().kl_target
        if self.config.policy_pick_holds_kl and target is not None:  # the weight that meets the KL target
            if tuned.policy not in self._pick_weights:
                self._pick_weights[tuned.policy] = pick_kl_weight_for_target(
                    tuned.policy, self.prior_model.prior, ensemble, k, target, self._num_steps,
                    np.random.default_rng(self.config.seed + 7), self._condition, reward_name="reward model")[0]
            weight = self._pick_weights[tuned.policy]
        mode = PolicyBestOfKModel(tuned.policy, self.prior_model.prior, ensemble, k, "reward model", tuned.name, weight)
        mode.name = f"{tuned.name}+best-of-{k}"
        return mode

    def _tuner_rows(self, tuned_models: list[TunedModel], primary: tuple[list[Melody], float],
                    judged: dict[str, tuple[list[Melody], float, float | None, int]], base: list[Melody], ensemble,
                    rng: np.random.Generator) -> dict[str, dict[str, Any]]:
        """Every tuner side by side (each beside best-of-N at its own KL), and policy + best-of-k.

        ``primary`` holds the first tuner's melodies and KL, sampled already; ``judged`` the rows
        already set beside best-of-N (name: melodies, KL, best-of-N's win-rate, its N)."""
        rows: dict[str, dict[str, Any]] = {}

        def add(name: str, model, melodies: list[Melody] | None, kl: float | None, seconds: float,
                with_best_of_n: bool) -> None:
            if melodies is None:
                melodies, speed = self._sample_timed(model, self._evaluation_size(TunedModel("", model), len(base)),
                                                     rng)
            else:  # already sampled: time a small batch for the cost
                _, speed = self._sample_timed(model, min(len(base), 64), rng)
            if kl is None:
                kl = (model.kl_estimate(melodies) if isinstance(model, PolicyBestOfKModel)
                      else float(kl_to_prior(model, self.prior_model.prior, melodies)))
            known = judged.get(name) if with_best_of_n else None
            rows[name] = self._judge(name, melodies, kl, base, ensemble, rng, speed, seconds,
                                     with_best_of_n=with_best_of_n and known is None)
            if known is not None:
                rows[name].update(best_of_n=known[3], best_of_n_win_rate=known[2])

        for position, tuned in enumerate(tuned_models):
            melodies, kl = primary if position == 0 else (None, tuned.kl_per_melody)
            is_best_of_n = tuned.policy is None
            add(tuned.name, tuned.model, melodies, kl, tuned.seconds, with_best_of_n=not is_best_of_n)
            if self.config.policy_best_of_k > 1 and not is_best_of_n:
                mode = self._policy_best_of_k(tuned, ensemble)
                known = judged.get(mode.name)
                add(mode.name, mode, known and known[0], known and known[1], tuned.seconds, with_best_of_n=True)
        return rows

    def _reward_model_accuracy(self, ensemble, melodies: list[Melody]) -> float:
        """Reward model vs the listener's noiseless preference on fresh prior pairs (ties left out)."""
        half = len(melodies) // 2
        first, second = melodies[:half], melodies[half: 2 * half]
        truth = self.listener.preferences(first, second)
        predicted = ensemble.score_batch(first) > ensemble.score_batch(second)
        decided = truth != 0.5
        return float(np.mean(predicted[decided] == (truth[decided] == 1.0))) if decided.any() else math.nan

    def _win_rate(self, tuned: list[Melody], base: list[Melody]) -> float:
        """Share of pairs the listener prefers the first of, noiselessly (ties count ½)."""
        return float(np.mean(self.listener.preferences(tuned, base)))

    # ---- report ---------------------------------------------------------
    def write_report(self) -> Path:
        """``report.md`` and ``plots/`` from every round so far (:mod:`rlcomposer.experiments.report`)."""
        from rlcomposer.experiments.report import write_report

        return write_report(self.run_dir, self.config, self.db_url,
                            [RoundResult(**r) for r in self.state["results"]])


def read_run_state(run_dir: str | Path) -> dict[str, Any]:
    """The round state of a run folder (``state.json``): a fresh state when there is none yet.

    A corrupt file raises one line naming it."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return {"round": 0, "results": []}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RLComposerError(f"{path}: not a readable experiment state ({str(error).splitlines()[0]}); "
                              "restore it or start a new run") from None
    if not isinstance(state, dict) or not isinstance(state.get("round"), int) \
            or not isinstance(state.get("results"), list):
        raise RLComposerError(f"{path}: not an experiment state (expected round and results)")
    return state


def resume_config(run_dir: str | Path) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RLComposerError(f"'{run_dir}' is not an experiment run folder (no config.yaml)")
    return load_experiment_config(path)


__all__ = ["PEOPLE", "STATE_FILE", "Experiment", "ExperimentConfig", "ExperimentWaiting", "RoundResult", "best_of_n_for_kl",
           "load_experiment_config", "read_run_state", "resume_config"]
