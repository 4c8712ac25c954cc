"""``rlcomposer tune``: PPO fine-tuning of the prior against a reward, with KL-control.

One config dataclass (CleanRL style) holds the environment's reward weights and
PPO's hyperparameters; derived values are computed in one marked place; the
resolved config is saved with the run. The output directory holds

* ``model.pt`` + ``config.json`` + ``metrics.json``: the tuned policy
  (weights only; ``generate`` and ``evaluate`` accept it like a prior);
* ``tb/``: TensorBoard logs (reward by term, KL(policy || prior) per melody,
  β, the rollout's musicality — style overlap with the held-out corpus,
  distinct melodies, repeated-pitch runs — entropy, clip fraction, approx-KL,
  explained variance);
* ``checkpoints/``: SB3 training-state zips for ``--resume`` (they unpickle:
  trusted files only);
* ``plots/reward.png``, ``plots/kl.png`` and ``history.jsonl``: the curves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList

from rlcomposer.checkpoints import (
    atomic_write_text,
    save_model_dir,
)
from rlcomposer.config import config_to_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.preferences.reward_functions import (
    ConservativeReward,
    RewardFunction,
)
from rlcomposer.prior.model import MelodyPrior, load_prior
from rlcomposer.rl import ALGORITHMS, LEAVE_ONE_OUT_ALGORITHMS, QUANTILE_ALGORITHMS
from rlcomposer.rl.best_of_n_distillation import DistillationConfig, distil_best_of_n
from rlcomposer.rl.dpo import DPOConfig, train_dpo
from rlcomposer.rl.environment import MelodyEnvConfig, MelodyVecEnv
from rlcomposer.rl.kl import best_of_n_for_kl, kl_to_prior_per_melody
from rlcomposer.rl.leave_one_out import LeaveOneOutAdvantageCallback
from rlcomposer.rl.policy import MelodyActorCriticPolicy
from rlcomposer.rl.quantile_reward import MIN_REFERENCE_SAMPLES, QuantileReward, fit_quantile_reward
from rlcomposer.rl.resume import check_resume, truncate_history
from rlcomposer.rl.run_folder import RunFolder
from rlcomposer.rl.sequence_ppo import SequencePPO
from rlcomposer.rl.tilt import MIN_TILT_SAMPLES, tilt_beta
from rlcomposer.rl.tuning_callbacks import (
    AtomicCheckpointCallback,
    ExactKLLossCallback,
    FiniteWeightsCallback,
    KLPenaltyCallback,
    ProgressCallback,
    TuningLogCallback,
    hold_kl_target,
    write_plots,
)
from rlcomposer.validation import (
    MAX_COUNT,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SEED,
    THREADS,
    Range,
    above,
    between,
    check_config,
)

TUNE_CONFIG_RANGES = {
    "kl_target": above(0, optional=True), "kl_gain": POSITIVE, "kl_warmup": between(0, 1),
    "reward_uncertainty": Range(0, optional=True),
    "total_timesteps": Range(1, MAX_COUNT, whole=True, optional=True),
    "total_melodies": between(1, MAX_COUNT, whole=True), "n_envs": between(1, 4096, whole=True),
    "episodes_per_rollout": between(1, 1024, whole=True), "minibatch_episodes": between(1, 65_536, whole=True),
    "n_epochs": between(1, 1000, whole=True), "learning_rate": above(0, 1), "clip_range": above(0, 1),
    "gamma": PROBABILITY, "gae_lambda": PROBABILITY, "ent_coef": NON_NEGATIVE, "vf_coef": NON_NEGATIVE,
    "max_grad_norm": POSITIVE, "target_kl": above(0, optional=True),
    "value_hidden_size": between(1, 4096, whole=True), "seed": SEED, "threads": THREADS,
    "checkpoint_every": between(0, MAX_COUNT, whole=True),
    "quantile_samples": between(MIN_REFERENCE_SAMPLES, 1 << 20, whole=True),
    "quantile_best_of": between(2, 1 << 20, whole=True, optional=True),
    "tilt_samples": between(MIN_TILT_SAMPLES, 1 << 20, whole=True),
}
"""Where each number of a :class:`TuneConfig` may lie (checked with its own name in the message)."""

DEFAULT_REWARD_UNCERTAINTY = 2.0
"""λ of the pessimistic reward (mean − λ × spread) a reward model pays when ``reward_uncertainty``
is not given (:attr:`TuneConfig.reward_uncertainty`)."""

KL_CONTROLS = ("sampled", "exact")
"""How PPO pays the KL to the prior (:attr:`TuneConfig.kl_control`)."""
KL_BETA_STARTS = ("given", "tilt")
"""Where β starts (:attr:`TuneConfig.kl_beta_start`)."""


@dataclass(frozen=True)
class TuneConfig:
    """Everything that decides a tuning run (saved as the policy's config)."""

    # --- the task
    prior: str = "prior"
    """Prior to start from and stay near: ``prior`` (shipped) or a model directory."""
    reward: str | None = None
    """Melody-level reward: ``module:function`` or a reward-model directory (None: theory terms only)."""
    env: MelodyEnvConfig = MelodyEnvConfig()
    """The composition task: melody length, β and the reward-term weights (its keys may be
    given flat, as ``kl_beta`` or ``num_bars``; see :class:`~rlcomposer.rl.environment.MelodyEnvConfig`)."""
    kl_target: float | None = 3.0
    """Target KL(π‖prior) per melody in nats: β adapts after every rollout to hold it (Ziegler et al.
    2019), starting from ``kl_beta``; None keeps β fixed. (Not SB3's ``target_kl``, which stops an
    update early.) 3 nats: chosen on the listener panel's choosing half (a fixed β = 0.1 ran to
    12-17 nats and collapsed; 1.5 nats won less)."""
    kl_gain: float = 0.3
    """How fast β follows ``kl_target``: β ← β·(1 + kl_gain·clip(KL/kl_target − 1, −0.2, 0.2)) per rollout."""
    kl_control: str = "sampled"
    """How PPO pays the KL: ``sampled`` (each step's reward carries −β·log π(a|s)/prior(a|s) of
    the action drawn; RLHF's usual per-token penalty) or ``exact`` (each step pays β times the
    exact KL(π(·|s)‖prior(·|s)) over the whole vocabulary at the state it led into, and the
    loss carries the gradient of those KLs themselves: the same objective, without the noise of
    the actions drawn). ``exact`` needs ``ent_coef`` 0 (it uses PPO's entropy slot)."""
    kl_warmup: float = 0.0
    """Share of training (:attr:`TuneConfig.training_steps`) over which the KL target rises linearly from a quarter of
    ``kl_target`` to all of it (0: the whole target from the start)."""
    kl_beta_start: str = "given"
    """Where β starts: ``given`` (``kl_beta``; vBoN's 1/(N − 1)) or ``tilt`` (the β at which the prior
    tilted by the reward, p·e^{r/β}/Z, the distribution KL-control aims at, has ``kl_target``
    nats of KL, estimated on ``tilt_samples`` prior melodies: :mod:`rlcomposer.rl.tilt`)."""
    tilt_samples: int = 4096
    """Prior melodies the ``tilt`` start estimates its β on (at least 256)."""
    kl_beta_rises_first: bool = False
    """β is not lowered until the policy's KL first reaches ``kl_target`` (from a low start it
    otherwise falls while the KL climbs, and the policy overshoots the target)."""
    reward_uncertainty: float | None = None
    """Conservative reward from an ensemble reward model: mean − this × the members' spread (0: the
    mean; Coste et al. 2024). None (the default): :data:`DEFAULT_REWARD_UNCERTAINTY` (2) for a reward
    model, 0 for a ``module:function`` reward, which has no spread (a number above 0 with one is
    refused). Chosen on the listener panel's choosing half with ``n_envs`` 256 and ``total_melodies``
    16,384: the policy alone won 0.855, 4.2 points behind best-of-N at equal KL, against 0.812 and
    8.5 points with 0 at 64 and 4,096 (``experiments/README.md``, "The pessimistic reward with four
    times the melodies")."""
    algorithm: str = "rloo"
    """``rloo`` (the default: sequence-level PPO whose advantage is each melody's return minus the
    mean of the rollout's other melodies, no critic; chosen on the listener panel's choosing half,
    where its win-rate came nearest best-of-N's at equal KL: median gap −0.072 against −0.081 for
    ``sequence`` and −0.104 for ``vbon-rloo``, ``experiments/tuner_eval.py``), ``sequence``
    (whole-episode PPO with a critic, fast), ``stock`` (SB3's PPO, per transition), ``dpo``
    (direct preference optimisation on the comparisons: no reward model, no environment),
    ``vbon`` (sequence PPO on the reward's log-quantile under the prior, β from 1/(N − 1):
    variational best-of-N), ``rloo`` (sequence PPO whose advantage is each melody's return
    minus the mean of the rollout's other melodies, no critic) or ``vbon-rloo`` (both)."""
    quantile_samples: int = 1024
    """vBoN: prior melodies the reward's distribution F̂ is estimated from (at least 16)."""
    quantile_best_of: int | None = None
    """vBoN: the N whose best-of-N distribution the policy aims at (β starts at 1/(N − 1));
    None: the N whose best-of-N KL, log N − (N − 1)/N, is ``kl_target``."""
    dpo: DPOConfig = DPOConfig()
    """DPO's settings when ``algorithm`` is dpo (flat keys ``dpo_beta``, ``dpo_loss``, ...)."""
    distill: DistillationConfig = DistillationConfig()
    """Best-of-N distillation's settings when ``algorithm`` is bond (flat keys ``distill_targets``, ...)."""
    # --- PPO
    total_melodies: int = 16_384
    """Melodies to train on (unless ``total_timesteps`` is given): 16,384 melodies are 1,048,576 steps
    at 4 bars of 4/4 and four times that at 16 bars, so a longer melody gets as many PPO updates
    (counted in tokens, 16 bars got a quarter of the updates and missed the KL target: 7-11 nats for
    3). Chosen with ``n_envs`` and ``reward_uncertainty`` (4,096 before: a third of the time, about
    4 points less win-rate on the panel's report half)."""
    total_timesteps: int | None = None
    """Environment steps (tokens) to train for, whatever the melodies' length (None:
    ``total_melodies`` melodies)."""
    n_envs: int = 256
    """Melodies written in parallel (one batched prior call per step), so also the melodies of a
    rollout between updates (with ``episodes_per_rollout`` 1) and the group each RLOO melody's
    baseline is the mean of (64 before, chosen with ``total_melodies``)."""
    episodes_per_rollout: int = 1
    """Episodes per sub-environment between updates (n_steps = this × episode length)."""
    minibatch_episodes: int = 16
    """Whole episodes per PPO minibatch (batch_size = this × episode length)."""
    n_epochs: int = 4
    """PPO epochs over each rollout."""
    learning_rate: float = 1e-4
    """Adam learning rate."""
    clip_range: float = 0.2
    """PPO ratio clip."""
    gamma: float = 1.0
    """Discount (1: every note of the melody counts the same)."""
    gae_lambda: float = 0.95
    """GAE λ."""
    ent_coef: float = 0.0
    """PPO's entropy bonus on top of KL-control (KL-control already rewards entropy: −β·log π)."""
    vf_coef: float = 0.5
    """Value-loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    target_kl: float | None = None
    """Stop an update's epochs early past this approx-KL (None: never)."""
    value_hidden_size: int = 64
    """Units of the value head on the GRU state."""
    # --- run
    seed: int = 0
    """Seeds the policy's value head, sampling and minibatch order."""
    threads: int = 1
    """torch CPU threads. 1, measured (``python experiments/bench_threads.py``, sequence PPO on the
    2-core machine, env-steps/s at 1 / 2 threads): alone 6,070 / 5,946; beside one busy process
    5,414 / 1,825; beside two 1,882 / 1,286. A second thread gains nothing alone and loses most of
    the speed as soon as anything else runs (another trial of a sweep, another job)."""
    checkpoint_every: int = 65_536
    """Save an SB3 training-state zip for --resume every this many steps (0: never)."""

    def __post_init__(self) -> None:
        check_config(self, TUNE_CONFIG_RANGES)
        if self.algorithm not in ALGORITHMS:
            raise RLComposerError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got '{self.algorithm}'")
        if self.kl_control not in KL_CONTROLS:
            raise RLComposerError(f"kl_control must be one of {', '.join(KL_CONTROLS)}, got '{self.kl_control}'")
        if self.kl_beta_start not in KL_BETA_STARTS:
            raise RLComposerError(f"kl_beta_start must be one of {', '.join(KL_BETA_STARTS)}, "
                                  f"got '{self.kl_beta_start}'")
        if self.kl_beta_start == "tilt" and (self.kl_target is None or self.uses_quantile_reward):
            raise RLComposerError("kl_beta_start tilt needs a kl_target and a reward paid as it is (not vBoN's)")
        if self.kl_control == "exact" and self.ent_coef > 0:
            raise RLComposerError("kl_control exact uses PPO's entropy term for the KL: set ent_coef to 0")
        if self.uses_quantile_reward and self.kl_target is None and self.quantile_best_of is None:
            raise RLComposerError(f"algorithm {self.algorithm} needs kl_target or quantile_best_of "
                                  "(the N of the best-of-N it aims at)")

    # ---- derived values (the one place they are computed) ---------------
    def env_config(self) -> MelodyEnvConfig:
        """The environment's config while tuning: KL-control is the callback's (β may adapt), so
        the environment pays no prior term; without a reward function its weight is 0."""
        return replace(self.env, kl_beta=0.0,
                       reward_weight=0.0 if self.reward is None else self.env.reward_weight)

    @property
    def episode_steps(self) -> int:
        return self.env.num_steps

    @property
    def uses_quantile_reward(self) -> bool:
        """Does PPO optimise the reward's log-quantile under the prior (vBoN)?"""
        return self.algorithm in QUANTILE_ALGORITHMS

    @property
    def uses_leave_one_out(self) -> bool:
        """Is each melody's advantage its return minus the mean of the others' (RLOO)?"""
        return self.algorithm in LEAVE_ONE_OUT_ALGORITHMS

    @property
    def ppo_class(self) -> type[PPO]:
        return PPO if self.algorithm == "stock" else SequencePPO

    @property
    def quantile_n(self) -> int:
        """vBoN's N: ``quantile_best_of``, or the N whose best-of-N KL is ``kl_target``."""
        if self.quantile_best_of is not None:
            return self.quantile_best_of
        return max(best_of_n_for_kl(self.kl_target or 0.0, cap=1 << 20), 2)

    @property
    def initial_beta(self) -> float:
        """β at the start: 1/(N − 1) for vBoN (its optimum is then best-of-N), else ``kl_beta``."""
        return 1.0 / (self.quantile_n - 1) if self.uses_quantile_reward else self.env.kl_beta

    @property
    def training_steps(self) -> int:
        """Environment steps to train for: ``total_timesteps``, else ``total_melodies`` melodies."""
        if self.total_timesteps is not None:
            return self.total_timesteps
        return self.total_melodies * self.episode_steps

    @property
    def n_steps(self) -> int:
        return self.episodes_per_rollout * self.episode_steps

    @property
    def batch_size(self) -> int:
        return self.minibatch_episodes * self.episode_steps



def reward_uncertainty_for(config: TuneConfig, reward_fn: RewardFunction | None) -> float:
    """The λ of the pessimistic reward a run pays: ``config.reward_uncertainty``, or when it is None
    :data:`DEFAULT_REWARD_UNCERTAINTY` for an ensemble reward model and 0 for anything else."""
    if config.reward_uncertainty is not None:
        return config.reward_uncertainty
    return DEFAULT_REWARD_UNCERTAINTY if hasattr(reward_fn, "member_scores") else 0.0


def pessimistic_reward(config: TuneConfig, reward_fn: RewardFunction | None,
                       log: Callable[[str], None] = print) -> tuple[TuneConfig, RewardFunction | None]:
    """The reward a run is paid, and its config with the λ it pays filled in (saved as paid): the
    ensemble's mean less λ × its spread (:class:`ConservativeReward`) where
    :func:`reward_uncertainty_for` is above 0 (said in ``log``), else ``reward_fn`` itself."""
    k = reward_uncertainty_for(config, reward_fn)
    config = replace(config, reward_uncertainty=k)
    if k <= 0:
        return config, reward_fn
    log(f"reward: the ensemble's mean - {k:g} x its members' spread (reward_uncertainty)")
    return config, ConservativeReward(reward_fn, k)


def build_model(config: TuneConfig, prior: MelodyPrior, reward_fn: RewardFunction | None,
                tensorboard_dir: Path | None = None) -> PPO:
    """The PPO (or SequencePPO) model with the prior's weights as its actor."""
    env = MelodyVecEnv(config.n_envs, config.env_config(), prior, reward_fn)
    return config.ppo_class(
        MelodyActorCriticPolicy,
        env,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        target_kl=config.target_kl,
        seed=config.seed,
        device="cpu",
        tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
        policy_kwargs={"prior_config": config_to_dict(prior.config),
                       "prior_state_dict": prior.state_dict(),
                       "value_hidden_size": config.value_hidden_size,
                       "condition": {"metre": config.env_config().metre,
                                     "mode": config.env_config().mode}},
    )


@dataclass
class TuneResult:
    """What a tuning run made: its metrics (as in ``metrics.json``) and the tuned actor itself."""

    metrics: dict[str, Any]
    policy: MelodyPrior
    """The tuned network (a prior with tuned weights, eval mode, ``tuned_condition`` set)."""
    history: list[dict[str, float]]
    """One record per rollout (PPO) or epoch (DPO): KL, reward by term, musicality."""


def tune(config: TuneConfig, out_dir: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`tune_policy` with the same arguments, returning its metrics only (as ``rlcomposer
    tune`` prints them and ``metrics.json`` holds them)."""
    return tune_policy(config, out_dir, *args, **kwargs).metrics


def tune_policy(
    config: TuneConfig,
    out_dir: str | Path,
    reward_fn: RewardFunction | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    gold_fn: RewardFunction | None = None,
    comparisons: Sequence[Any] | None = None,
    prior: MelodyPrior | None = None,
) -> TuneResult:
    r"""Tune the prior and write the policy, logs, checkpoints and plots into ``out_dir``.

    PPO (``sequence`` / ``stock`` / ``vbon`` / ``rloo`` / ``vbon-rloo``) optimises
    ``reward_fn``; DPO (``dpo``) fits ``comparisons``
    (:class:`~rlcomposer.preferences.reward_model.PairLabel`\ s) directly. ``prior``
    (default: loaded from ``config.prior``) is the model tuning starts from and stays
    near. ``gold_fn`` (optional) is a true listener's score, logged beside the proxy
    reward after every rollout to show over-optimisation (Gao et al. 2022).
    """
    if prior is None:
        prior = load_prior(config.prior)
    if config.algorithm == "dpo":
        return _tune_dpo(config, Path(out_dir), comparisons, log, prior)
    if config.algorithm == "bond":
        return _tune_bond(config, Path(out_dir), reward_fn, log, prior)
    if config.reward is not None and reward_fn is None:
        raise RLComposerError("the config names a reward but no reward function was given")
    if config.reward is None and not config.env_config().theory_weights:
        raise RLComposerError("nothing to tune for: give --reward or a non-zero theory_* weight")
    if config.uses_quantile_reward and reward_fn is None:
        raise RLComposerError(f"algorithm {config.algorithm} needs a reward function (--reward)")
    config, reward_fn = pessimistic_reward(config, reward_fn, log)  # the environment pays the pessimistic reward
    torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RLComposerError(f"--out '{out_dir}' exists and is not a directory")
    if resume is not None:
        resume = Path(resume)
        check_resume(resume, config, prior)  # before anything is written
    if config.kl_beta_start == "tilt" and resume is None:  # β from the tilt that has the target KL
        if reward_fn is None:
            raise RLComposerError("kl_beta_start tilt needs a reward function (--reward)")
        beta = tilt_beta(reward_fn, prior, config.env.condition, config.kl_target, config.tilt_samples,
                         np.random.default_rng(config.seed + 7927))
        log(f"β starts at {beta:.4f}: the prior tilted by the reward has {config.kl_target:g} nats of KL "
            f"there ({config.tilt_samples} prior melodies)")
        config = replace(config, env=replace(config.env, kl_beta=beta))  # saved as started
    if config.uses_quantile_reward:  # F̂ from the prior's own melodies of this task
        reward_fn = fit_quantile_reward(reward_fn, prior, config.env.condition, config.quantile_samples,
                                        torch.Generator().manual_seed(config.seed + 7919))
        log(f"quantile reward: F̂ from {config.quantile_samples} prior melodies; aiming at best-of-"
            f"{config.quantile_n} (β starts at {config.initial_beta:.4f})")
    run = RunFolder(out_dir)
    try:
        return _tune_ppo(config, run, prior, reward_fn, resume, progress, log, gold_fn)
    except BaseException as error:
        left = run.clean_up_after_failure()
        if left and isinstance(error, RLComposerError):
            raise type(error)(f"{error} ({left})") from None
        if left:
            log(f"stopped: {left}")
        raise


def _tuned_actor(model: PPO, config: TuneConfig) -> MelodyPrior:
    """The policy's actor as a standalone prior network (a copy, eval mode, its task recorded)."""
    actor = MelodyPrior(model.policy.actor.config)
    actor.load_state_dict(model.policy.actor.state_dict())
    actor.eval()
    actor.tuned_condition = config.env.condition.with_length(None)
    return actor


def _tune_ppo(config: TuneConfig, run: RunFolder, prior: MelodyPrior, reward_fn: RewardFunction | None,
              resume: Path | None, progress: bool, log: Callable[[str], None],
              gold_fn: RewardFunction | None) -> TuneResult:
    out_dir = run.path
    run.create()
    atomic_write_text(run.make_file("tune_config.json"), json.dumps(config_to_dict(config), indent=2) + "\n")
    history_path = run.make_file("history.jsonl")
    if resume is None:
        history_path.write_text("")
        model = build_model(config, prior, reward_fn, run.make_dir("tb"))
    else:
        env = MelodyVecEnv(config.n_envs, config.env_config(), prior, reward_fn)
        try:
            model = config.ppo_class.load(resume, env=env, device="cpu", tensorboard_log=str(run.make_dir("tb")))
        except Exception as error:
            raise RLComposerError(f"--resume '{resume}': cannot load ({error})") from None
        log(f"resuming from {resume} at step {model.num_timesteps}")
        truncate_history(history_path, model.num_timesteps)  # the steps after the checkpoint are trained again
    beta = config.initial_beta
    if resume is not None and config.kl_target is not None and history_path.exists():
        earlier = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
        beta = next((h["kl_beta"] for h in reversed(earlier) if "kl_beta" in h), beta)  # where β had got to
    kl_penalty = KLPenaltyCallback(prior, beta, config.kl_target, config.kl_gain,
                                   int(config.kl_warmup * config.training_steps),
                                   exact=config.kl_control == "exact",
                                   rises_first=config.kl_beta_rises_first and resume is None)
    kl_penalty.snapshot_after = config.training_steps // 2
    logger_callback = TuningLogCallback(prior, history_path, gold_fn, kl_penalty)
    callbacks = [FiniteWeightsCallback(config), kl_penalty]
    if config.uses_leave_one_out:  # after KL-control has written the rewards
        callbacks.append(LeaveOneOutAdvantageCallback(config.episode_steps))
    if config.kl_control == "exact":  # after the advantages are written
        callbacks.append(ExactKLLossCallback(kl_penalty))
    callbacks += [logger_callback, ProgressCallback(config.training_steps, progress)]
    if config.checkpoint_every > 0:
        every = max(config.checkpoint_every // config.n_envs, 1)
        callbacks.append(AtomicCheckpointCallback(every, str(run.make_dir("checkpoints")), name_prefix="ppo"))
    started = time.monotonic()
    remaining = config.training_steps - (model.num_timesteps if resume is not None else 0)
    model.learn(max(remaining, 0), callback=CallbackList(callbacks), tb_log_name="ppo",
                reset_num_timesteps=resume is None)
    seconds = time.monotonic() - started
    FiniteWeightsCallback.check(model, config)
    final_zip = run.make_dir("checkpoints") / "final.zip"
    staging = final_zip.with_name(".final.zip.partial.zip")
    model.save(staging)
    staging.replace(final_zip)
    kl_hold = hold_kl_target(model, prior, config, kl_penalty, log)
    history = logger_callback.history
    if resume is not None and history_path.exists():
        history = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
    plots = write_plots(history, out_dir / "plots") if history else []
    metrics = {
        "seconds": seconds,
        "env_steps_per_second": max(remaining, 0) / seconds if seconds > 0 else 0.0,
        "timesteps": int(model.num_timesteps),
        "final": history[-1] if history else {},
        "first": history[0] if history else {},
        "plots": [str(p) for p in plots],
    }
    if kl_hold:
        metrics["kl_target_hold"] = kl_hold
    if isinstance(reward_fn, QuantileReward):
        metrics["quantile_reward"] = {"reference_samples": reward_fn.num_reference,
                                      "best_of": config.quantile_n}
    policy = model.policy
    save_model_dir(out_dir, "policy", prior.config, policy.state_dict(), config, metrics,
                   extra_config={"env": asdict(config.env_config())})
    return TuneResult(metrics, _tuned_actor(model, config), history)


def _tune_dpo(config: TuneConfig, out_dir: Path, comparisons: Sequence[Any] | None,
              log: Callable[[str], None], prior: MelodyPrior) -> TuneResult:
    """DPO on the comparisons, written as a policy directory like PPO's."""
    if not comparisons:
        raise RLComposerError("tune --algorithm dpo needs comparisons (from the rating database), got none")
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    condition = config.env.condition
    policy, metrics = train_dpo(comparisons, config.dpo, prior, config.episode_steps,
                                np.random.default_rng(config.seed), log, condition)
    sample = policy.sample(256, config.episode_steps, generator=torch.Generator().manual_seed(config.seed),
                           condition=condition)
    kl = float(kl_to_prior_per_melody(policy, prior, torch.as_tensor(sample), condition).mean())
    metrics.update({"seconds": time.monotonic() - started, "kl_per_melody": kl,
                    "final": {"kl_per_melody": kl, "held_out_accuracy": metrics["held_out_accuracy"]}})
    result = _save_fitted_policy(config, out_dir, prior, policy, metrics)
    log(f"DPO policy: KL to prior {kl:.2f} nats per melody")
    return result


def _tune_bond(config: TuneConfig, out_dir: Path, reward_fn: RewardFunction | None,
               log: Callable[[str], None], prior: MelodyPrior) -> TuneResult:
    """Best-of-N distillation (:mod:`rlcomposer.rl.best_of_n_distillation`), written as a policy
    directory like PPO's."""
    if reward_fn is None:
        raise RLComposerError("tune --algorithm bond needs a reward function (--reward)")
    config, reward_fn = pessimistic_reward(config, reward_fn, log)
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    condition = config.env.condition
    policy, metrics = distil_best_of_n(prior, reward_fn, condition, config.kl_target, config.distill,
                                       config.seed, log)
    metrics.update({"seconds": time.monotonic() - started,
                    "final": {"kl_per_melody": metrics["kl_per_melody"], "held_out_nll": metrics["held_out_nll"]}})
    result = _save_fitted_policy(config, out_dir, prior, policy, metrics)
    log(f"best-of-{metrics['best_of']} distilled: KL to prior {metrics['kl_per_melody']:.2f} nats per melody, "
        f"{metrics['seconds']:.0f} s")
    return result


def _save_fitted_policy(config: TuneConfig, out_dir: Path, prior: MelodyPrior, policy: MelodyPrior,
                        metrics: dict[str, Any]) -> TuneResult:
    """A policy fitted without PPO (DPO, distillation) written as a policy directory like PPO's:
    the config, the history (popped from ``metrics``), the actor's weights; returned tuned (eval
    mode, told its task's metre and mode)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "tune_config.json", json.dumps(config_to_dict(config), indent=2) + "\n")
    history = metrics.pop("history")
    atomic_write_text(out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    state = {f"actor.{name}": value for name, value in policy.state_dict().items()}
    save_model_dir(out_dir, "policy", prior.config, state, config, metrics,
                   extra_config={"env": asdict(config.env_config())})
    policy.eval()
    policy.tuned_condition = config.env.condition.with_length(None)
    return TuneResult(metrics, policy, history)
