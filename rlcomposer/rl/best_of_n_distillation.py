"""Best-of-N distillation: a policy fitted by maximum likelihood to best-of-N's melodies.

Best-of-N sampling from the prior is the most KL-efficient way this project has to
please a reward (its win-rate at equal KL beat every PPO variant by 4-24 points),
but it pays N prior melodies and N reward calls for every melody it makes. This
tuner pays them once: it draws ``targets`` melodies, each the best of N prior
melodies under the reward, and fits a copy of the prior to them by maximum
likelihood (the forward KL to the best-of-N distribution, the BOND objective of
Sessa et al. 2024 without its moving anchor). The policy then samples at a
policy's cost.

N comes from the KL target: the N whose best-of-N KL, ``log N − (N − 1)/N``, is
``kl_target`` (best-of-N's own distance from the prior), unless ``best_of`` is
given. Every ``check_every`` gradient steps the policy's KL to the prior and the
held-out targets' likelihood are measured; the weights kept are the check where
the held-out targets were likeliest, and fitting stops when the KL passes
``kl_stop`` times best-of-N's (a finite set of targets, fitted too long, is memorised: the KL keeps
rising and the melodies collapse onto the targets).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from rlcomposer.checkpoints import check_finite_loss
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.reward_functions import score_melodies
from rlcomposer.prior.model import MelodyCondition, MelodyPrior
from rlcomposer.rl.kl import best_of_n_for_kl, best_of_n_kl, kl_to_prior_per_melody
from rlcomposer.validation import AT_LEAST_ONE, Range, above, between, check_config


@dataclass(frozen=True)
class DistillationConfig:
    """How best-of-N distillation makes and fits its targets (keys ``distill_*`` in a tune config)."""

    best_of: int | None = None
    """N of the best-of-N whose melodies the policy learns (None: the N whose KL is ``kl_target``)."""
    targets: int = 2048
    """Best-of-N melodies to fit (each the best of N fresh prior melodies)."""
    epochs: int = 12
    """Most passes over the targets."""
    learning_rate: float = 3e-4
    """Adam learning rate of the policy (all of the prior's weights)."""
    batch_size: int = 64
    """Melodies per gradient step."""
    held_out_fraction: float = 0.1
    """Share of the targets kept out of fitting; the epoch where they are likeliest is kept."""
    kl_stop: float = 1.1
    """Stop when the policy's KL to the prior passes this multiple of the target."""
    kl_samples: int = 256
    """Policy melodies the KL is measured on at every check."""
    check_every: int = 4
    """Gradient steps between checks of the KL and the held-out NLL (and at every epoch's end)."""
    rounds: int = 1
    """Rounds of distillation. 1: best-of-N of the prior at once. More: a moving anchor, each
    round fitting the best of k (``best_of``, default 4) of the last round's policy, until the
    KL to the prior reaches the target (iterated BOND: best-of-k of best-of-k is best-of-k²)."""

    def __post_init__(self) -> None:
        check_config(self, {"best_of": Range(2, 65_536, whole=True, optional=True),
                            "targets": between(16, 1_000_000, whole=True), "epochs": between(1, 10_000, whole=True),
                            "learning_rate": above(0, 1), "batch_size": between(1, 65_536, whole=True),
                            "held_out_fraction": Range(0.05, 0.5), "kl_stop": Range(1, 100),
                            "kl_samples": AT_LEAST_ONE, "check_every": AT_LEAST_ONE,
                            "rounds": between(1, 1000, whole=True)}, "distill ")


def distillation_n(config: DistillationConfig, kl_target: float | None) -> int:
    """The N whose best-of-N melodies are fitted."""
    if config.best_of is not None:
        return config.best_of
    return max(best_of_n_for_kl(kl_target or 3.0, cap=1 << 16), 2)


def best_of_n_targets(prior: MelodyPrior, reward_fn, condition: MelodyCondition, n: int, count: int,
                      generator: torch.Generator, log: Callable[[str], None], batch: int = 2048) -> np.ndarray:
    """``[count, T]`` tokens, each the best of ``n`` prior melodies of ``condition`` under ``reward_fn``
    (drawn about ``batch`` melodies at a time: one batched call of the prior per step)."""
    key = Key("C", condition.mode)
    chunk = max(1, batch // n)
    rows: list[np.ndarray] = []
    for first in range(0, count, chunk):
        groups = min(chunk, count - first)
        tokens = prior.sample(groups * n, condition.num_steps, generator, condition=condition)
        melodies = [Melody(row, {}, condition.metre, key, condition.pickup_steps) for row in tokens]
        scores = score_melodies(reward_fn, melodies).reshape(groups, n)
        rows.append(tokens.reshape(groups, n, -1)[np.arange(groups), scores.argmax(axis=1)])
        if (first // chunk) % max(1, 512 // chunk) == 0:
            log(f"best-of-{n} targets: {first + groups}/{count}")
    return np.concatenate(rows, axis=0)


def _fit_round(policy: MelodyPrior, prior: MelodyPrior, targets: torch.Tensor, condition: MelodyCondition,
               config: DistillationConfig, rng: np.random.Generator, seed: int, kl_limit: float, epoch_offset: float,
               label: str, log: Callable[[str], None]) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Fit ``policy`` (in place) to ``targets`` by maximum likelihood; leave it at the check where
    the held-out targets were likeliest with the KL to the prior within ``kl_limit``. Returns
    the checks' history and the kept check."""
    order = rng.permutation(len(targets))
    held = max(1, int(round(config.held_out_fraction * len(targets))))
    held_idx, train_idx = order[:held], order[held:]
    optimiser = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)

    def held_out_nll() -> float:
        policy.eval()
        with torch.inference_mode():
            logits = policy.sequence_logits(targets[held_idx], condition)
            nll = F.cross_entropy(logits.transpose(1, 2), targets[held_idx], reduction="none").sum(dim=1)
        return float(nll.mean())

    def measured_kl() -> float:
        sample = policy.sample(config.kl_samples, condition.num_steps, torch.Generator().manual_seed(seed + 1),
                               condition=condition)
        policy.eval()  # no dropout in the measurement
        return float(kl_to_prior_per_melody(policy, prior, torch.as_tensor(sample), condition).mean())

    first = {"epoch": epoch_offset, "held_out_nll": held_out_nll(), "kl_per_melody": measured_kl()}
    history = [first]
    best_state, kept = copy.deepcopy(policy.state_dict()), first
    batches_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    step, losses, stop = 0, [], False
    for epoch in range(1, config.epochs + 1):
        policy.train()
        for start in range(0, len(train_idx), config.batch_size):
            batch = targets[train_idx[start:start + config.batch_size]]
            logits = policy.sequence_logits(batch, condition)
            loss = F.cross_entropy(logits.transpose(1, 2), batch)
            check_finite_loss(loss, "best-of-N distillation", f"epoch {epoch}",
                              f"distill_learning_rate={config.learning_rate:g}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % config.check_every and step % batches_per_epoch:
                continue
            kl, nll = measured_kl(), held_out_nll()
            policy.train()
            record = {"epoch": epoch_offset + step / batches_per_epoch, "train_nll_per_step": float(np.mean(losses)),
                      "held_out_nll": nll, "kl_per_melody": kl}
            history.append(record)
            losses = []
            if kl > kl_limit:
                log(f"{label} at epoch {step / batches_per_epoch:.2f}: KL {kl:.2f} passed {kl_limit:.2f}: stopping")
                stop = True
                break
            if nll < kept["held_out_nll"]:
                best_state, kept = copy.deepcopy(policy.state_dict()), record
        log(f"{label} epoch {epoch}: held-out NLL {history[-1]['held_out_nll']:.2f} per melody, KL to "
            f"prior {history[-1]['kl_per_melody']:.2f} nats")
        if stop:
            break
        train_idx = train_idx[rng.permutation(len(train_idx))]
    policy.load_state_dict(best_state)
    policy.eval()
    return history, kept


def distil_best_of_n(prior: MelodyPrior, reward_fn, condition: MelodyCondition, kl_target: float | None,
                     config: DistillationConfig, seed: int,
                     log: Callable[[str], None] = print) -> tuple[MelodyPrior, dict[str, Any]]:
    """Fit a copy of ``prior`` to best-of-N melodies of ``condition``; returns the policy (eval
    mode) and its metrics (N, targets, the KL and held-out NLL at every check, the kept check).

    With ``config.rounds`` 1 the targets are best-of-N of the prior (N from the KL target).
    With more, each round's targets are the best of ``k`` (``best_of``, default 4) of the last
    round's policy (a moving anchor: k rounds of best-of-k compose to best-of-k^rounds), until
    the policy's KL to the prior reaches the target."""
    target = kl_target or 3.0
    iterated = config.rounds > 1
    n = (config.best_of or 4) if iterated else distillation_n(config, kl_target)
    limit = config.kl_stop * (target if iterated else best_of_n_kl(n))
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = copy.deepcopy(prior)
    anchor = prior
    history: list[dict[str, float]] = []
    kept: dict[str, float] = {}
    rounds_run = 0
    for round_index in range(config.rounds):
        label = f"distillation round {round_index + 1}" if iterated else "distillation"
        targets = torch.as_tensor(best_of_n_targets(anchor, reward_fn, condition, n, config.targets, generator, log),
                                  dtype=torch.long)
        round_history, round_kept = _fit_round(policy, prior, targets, condition, config, rng, seed + round_index,
                                               limit, float(round_index * config.epochs), label, log)
        history += [{**h, "round": round_index + 1} for h in round_history]
        rounds_run = round_index + 1
        progress = round_kept is not round_history[0]
        kept = {**round_kept, "round": rounds_run}
        if iterated:
            log(f"{label}: best-of-{n} of the last policy fitted; KL to prior {round_kept['kl_per_melody']:.2f} "
                f"nats (target {target:g})")
        if not progress or round_kept["kl_per_melody"] >= 0.95 * target:
            break
        anchor = copy.deepcopy(policy)
    metrics = {"best_of": n, "best_of_n_kl": best_of_n_kl(n), "targets": config.targets, "rounds": rounds_run,
               "kept_epoch": kept["epoch"], "held_out_nll": kept["held_out_nll"],
               "kl_per_melody": kept["kl_per_melody"], "history": history}
    return policy, metrics
