"""The callbacks of a tuning run: KL-control with an adaptive β, logging, progress, checkpoints,
a finite-weights guard, the end-of-run KL check, and the reward / KL plots.

Each is a small stable-baselines3 ``BaseCallback`` (extension by callbacks, not forks);
:func:`rlcomposer.rl.tuning.tune_policy` puts them together.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback

from rlcomposer.checkpoints import TrainingDiverged, non_finite_tensor
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.style import style_report
from rlcomposer.preferences.reward_functions import RewardFunction, score_melodies
from rlcomposer.prior.model import MelodyPrior
from rlcomposer.rl.kl import kl_to_prior_per_melody, kl_to_prior_per_step

TuneConfig = Any
"""A :class:`rlcomposer.rl.tuning.TuneConfig` (named here without importing it: tuning imports this module)."""

def rollout_episodes(model: PPO) -> torch.Tensor:
    """The melodies of the last rollout, ``[episodes, length]`` (rollouts start on episode boundaries)."""
    actions = torch.as_tensor(model.rollout_buffer.actions[..., 0], dtype=torch.long)  # [n_steps, n_envs]
    return actions.T.reshape(-1, model.policy.num_steps)


class TuningLogCallback(BaseCallback):
    """Logs reward by term and KL(policy‖prior) per melody after every rollout; keeps the history."""

    def __init__(self, prior: MelodyPrior, history_path: Path | None = None,
                 gold_fn: RewardFunction | None = None, kl_penalty: KLPenaltyCallback | None = None):
        super().__init__()
        self.prior = prior
        self.kl_penalty = kl_penalty
        self.history_path = history_path
        self.gold_fn = gold_fn
        self.history: list[dict[str, float]] = []
        self._terms: dict[str, list[float]] = defaultdict(list)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            terms = info.get("reward_terms")
            if terms:
                for name, value in terms.items():
                    self._terms[name].append(value)
                self._terms["total"].append(sum(terms.values()))
        return True

    def _on_rollout_end(self) -> None:
        episodes = rollout_episodes(self.model)
        if self.kl_penalty is not None:
            kl = self.kl_penalty.last_kl
        else:
            kl = float(kl_to_prior_per_melody(self.model.policy.actor, self.prior, episodes,
                                              self.model.policy.condition).mean())
        record = {"timesteps": float(self.num_timesteps), "kl_per_melody": kl}
        condition = self.model.policy.condition
        melodies = [Melody(row, {}, condition.metre, Key("C", condition.mode))
                    for row in episodes.numpy()]
        style = style_report(melodies)  # musicality of what the policy writes now
        record.update({"style_overlap": style.style_overlap, "distinct_melodies": style.distinct_melodies,
                       "longest_repeated_pitch_run": style.longest_run_mean,
                       "one_pitch_repeated": style.monotone_share})
        if self.gold_fn is not None:
            record["gold"] = float(score_melodies(self.gold_fn, melodies, "gold listener").mean())
        for name, values in self._terms.items():
            record[f"reward_{name}"] = float(np.mean(values))
        if self.kl_penalty is not None and "reward_total" in record:
            record["kl_beta"] = self.kl_penalty.last_beta
            record["reward_kl"] = self.kl_penalty.last_penalty_per_melody
            record["reward_total"] += record["reward_kl"]
        self._terms.clear()
        self.history.append(record)
        for key, value in record.items():
            if key != "timesteps":
                self.logger.record(f"melody/{key}", value)
        if self.history_path is not None:
            with self.history_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


class KLPenaltyCallback(BaseCallback):
    """KL-control: after each rollout every step earns β·(log p_prior(a|s) − log π(a|s)).

    The sum over a melody is −β times a sample of KL(π‖prior), so PPO maximises
    reward − β·KL(π‖prior) (Jaques et al. 2017; RLHF's per-token KL penalty).
    The returns and advantages are then recomputed with SB3's own GAE. The
    exact KL(π‖prior) per melody of the rollout is kept in ``last_kl``.

    With ``kl_target`` β adapts to hold that KL (Ziegler et al. 2019's
    proportional controller): β ← β·(1 + gain·clip(KL/target − 1, −0.2, 0.2)); with
    ``rises_first`` β is left as it is until the KL first reaches the target.

    With ``exact`` the penalty is the exact KL(π(·|s_t)‖prior(·|s_t)) of each state the
    melody passed through instead of the sampled log-ratio of its action (the same sum in
    expectation, without the noise of the action drawn), paid on the step that led into
    that state; :class:`ExactKLLossCallback` adds the term this leaves out, the gradient of
    each state's KL itself.
    """

    def __init__(self, prior: MelodyPrior, beta: float, kl_target: float | None = None, gain: float = 0.3,
                 warmup_steps: int = 0, exact: bool = False, rises_first: bool = False):
        super().__init__()
        self.rises_first = rises_first
        """β is not lowered until the KL first reaches the target."""
        self.reached_target = False
        self.exact = exact
        self.warmup_steps = warmup_steps
        self.prior = prior
        self.beta = beta
        self.kl_target = kl_target
        self.gain = gain
        self.last_penalty_per_melody = 0.0
        self.last_kl = 0.0
        self.last_beta = beta
        self.snapshot_after = 0
        """Steps after which a rollout within ±5% of the target keeps a copy of the actor."""
        self.in_band: tuple[int, float, dict[str, torch.Tensor]] | None = None
        """(step, KL on that rollout, actor weights) of the last rollout within ±5% of the target."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        episodes = rollout_episodes(self.model)
        condition = self.model.policy.condition
        with torch.inference_mode():
            prior_log = self.prior.log_likelihood(episodes, condition)  # [episodes, length]
            step_kl = kl_to_prior_per_step(self.model.policy.actor, self.prior, episodes, condition)
        prior_log = prior_log.reshape(buffer.n_envs, -1).T.numpy()  # back to [n_steps, n_envs]
        self.last_kl = float(step_kl.sum(dim=1).mean())
        self.last_beta = self.beta
        if (self.kl_target is not None and self.num_timesteps >= self.snapshot_after
                and abs(self.last_kl / self.kl_target - 1.0) <= 0.05):
            state = {name: value.detach().clone() for name, value in self.model.policy.actor.state_dict().items()}
            self.in_band = (self.num_timesteps, self.last_kl, state)
        if self.beta != 0:
            if self.exact:  # state t's KL on step t − 1 (the first state's, fixed, on step 0)
                paid = torch.cat([step_kl[:, 1:], torch.zeros_like(step_kl[:, :1])], dim=1)
                paid[:, 0] += step_kl[:, 0]
                penalty = self.beta * paid.reshape(buffer.n_envs, -1).T.numpy()
            else:
                penalty = self.beta * (buffer.log_probs - prior_log)
            buffer.rewards -= penalty
            buffer.compute_returns_and_advantage(last_values=self.locals["values"], dones=self.locals["dones"])
            self.last_penalty_per_melody = -float(penalty.sum()) / episodes.shape[0]
        self.logger.record("melody/kl_beta", self.beta)
        if self.kl_target is not None:
            error = float(np.clip(self.last_kl / self.target_now() - 1.0, -0.2, 0.2))
            self.reached_target = self.reached_target or error >= 0
            if self.reached_target or not self.rises_first:
                self.beta = max(self.beta * (1.0 + self.gain * error), 1e-6)


    def target_now(self) -> float:
        """The KL target at this point of training: rising linearly over the warm-up (from a
        quarter of it), then the target itself, so that the policy does not overshoot early."""
        assert self.kl_target is not None
        if self.warmup_steps <= 0:
            return self.kl_target
        return self.kl_target * min(1.0, 0.25 + 0.75 * self.num_timesteps / self.warmup_steps)


class ExactKLLossCallback(BaseCallback):
    """Exact KL-control's second half: after each rollout (and its advantages), PPO's
    ``ent_coef`` becomes β / (the advantages' spread), so that the loss carries
    β·Σ_t KL(π(·|s_t)‖prior(·|s_t)) on the scale PPO's normalised advantages put the
    reward on. The policy hands PPO −KL per state as its "entropy"
    (:meth:`~rlcomposer.rl.policy.MelodyActorCriticPolicy.set_kl_reference`).

    Must come after the callbacks that write the advantages.
    """

    def __init__(self, kl_penalty: KLPenaltyCallback):
        super().__init__()
        self.kl_penalty = kl_penalty

    def _on_training_start(self) -> None:
        self.model.policy.set_kl_reference(self.kl_penalty.prior)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        spread = float(np.std(self.model.rollout_buffer.advantages))
        self.model.ent_coef = self.kl_penalty.last_beta / max(spread, 1e-8)
        self.logger.record("melody/kl_loss_coef", self.model.ent_coef)


class ProgressCallback(BaseCallback):
    """A tqdm progress bar over environment steps (no ``rich`` needed)."""

    def __init__(self, total: int, enabled: bool = True):
        super().__init__()
        self.total, self.enabled, self.bar = total, enabled, None

    def _on_training_start(self) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.num_timesteps, unit="step", desc="tuning")

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.n = self.num_timesteps
            self.bar.refresh() if self.n_calls % 256 == 0 else None
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.n = self.num_timesteps
            self.bar.close()


def write_plots(history: list[dict[str, float]], plot_dir: Path, title: str = "") -> list[Path]:
    """Reward (by term) and KL curves as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    steps = [h["timesteps"] for h in history]
    paths = []
    figure, axis = plt.subplots(figsize=(7, 4))
    for key in sorted({k for h in history for k in h if k.startswith("reward_")}):
        axis.plot(steps, [h.get(key, np.nan) for h in history], label=key.removeprefix("reward_"),
                  linewidth=2.5 if key == "reward_total" else 1.2)
    axis.set_xlabel("environment steps")
    axis.set_ylabel("mean per melody")
    axis.set_title(f"Reward by term {title}".strip())
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    paths.append(plot_dir / "reward.png")
    _save_figure(figure, paths[-1])
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(steps, [h["kl_per_melody"] for h in history], color="tab:red")
    axis.set_xlabel("environment steps")
    axis.set_ylabel("KL(policy || prior) per melody (nats)")
    axis.set_title(f"Distance from the prior {title}".strip())
    axis.grid(alpha=0.3)
    figure.tight_layout()
    paths.append(plot_dir / "kl.png")
    _save_figure(figure, paths[-1])
    plt.close(figure)
    return paths


def _save_figure(figure, path: Path) -> None:
    """A PNG written to a temporary file and renamed, so a plot is never half-written."""
    staging = path.with_name(f".{path.name}.partial")
    figure.savefig(staging, dpi=110, format="png")
    staging.replace(path)


KL_CHECK_MELODIES = 512
"""Fresh melodies the tuned policy's KL is measured on at the end of training."""


def hold_kl_target(model: PPO, prior: MelodyPrior, config: TuneConfig, kl_penalty: KLPenaltyCallback,
                   log: Callable[[str], None]) -> dict[str, float]:
    """The KL target holds: measure the final policy's KL on fresh melodies; if it is more than
    10% off the target, go back to the last actor of the second half of training whose rollout
    was within 5% of it (if there was one). Returns what was measured and done ({} without a target)."""
    if config.kl_target is None:
        return {}
    actor, condition = model.policy.actor, model.policy.condition
    generator = torch.Generator().manual_seed(config.seed + 104_729)
    tokens = torch.as_tensor(actor.sample(KL_CHECK_MELODIES, config.episode_steps, generator, condition=condition))
    final_kl = float(kl_to_prior_per_melody(actor, prior, tokens, condition).mean())
    record = {"target": config.kl_target, "final_kl": final_kl}
    if abs(final_kl / config.kl_target - 1.0) > 0.10 and kl_penalty.in_band is not None:
        step, rollout_kl, state = kl_penalty.in_band
        actor.load_state_dict(state)
        tokens = torch.as_tensor(actor.sample(KL_CHECK_MELODIES, config.episode_steps, generator,
                                              condition=condition))
        restored_kl = float(kl_to_prior_per_melody(actor, prior, tokens, condition).mean())
        record.update(restored_step=float(step), restored_rollout_kl=rollout_kl, restored_kl=restored_kl)
        log(f"KL target {config.kl_target:g}: the final policy is at {final_kl:.2f} nats; kept the policy of "
            f"step {step:,} instead ({restored_kl:.2f} nats)")
    return record


class AtomicCheckpointCallback(CheckpointCallback):
    """SB3's checkpoints, each written to a temporary file and renamed: a run killed while saving
    leaves its earlier checkpoints and no half-written zip."""

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            path = Path(self._checkpoint_path(extension="zip"))
            staging = path.with_name(f".{path.stem}.partial.zip")
            self.model.save(staging)
            staging.replace(path)
        return True


class FiniteWeightsCallback(BaseCallback):
    """Stops tuning as soon as an update leaves NaN or infinite weights (before the next rollout)."""

    def __init__(self, config: TuneConfig):
        super().__init__()
        self.config = config

    @staticmethod
    def check(model: PPO, config: TuneConfig) -> None:
        bad = non_finite_tensor(model.policy.state_dict())
        if bad is not None:
            raise TrainingDiverged(
                f"tuning: policy weights became non-finite ('{bad}') in the update before step "
                f"{model.num_timesteps:,} with learning_rate={config.learning_rate:g}, "
                f"max_grad_norm={config.max_grad_norm:g}, clip_range={config.clip_range:g}; "
                "no model written (lower the learning rate)")

    def _on_rollout_start(self) -> None:
        self.check(self.model, self.config)

    def _on_step(self) -> bool:
        return True
