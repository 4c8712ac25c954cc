"""Direct preference optimisation: tune the prior on the comparisons themselves, with no reward model.

DPO (Rafailov et al. 2023) treats the policy's log-ratio to a frozen reference
(here the prior) as an implicit reward, ``r(x) = β·(log π(x) − log π_ref(x))``
for a whole melody ``x``, and fits it to the comparisons by Bradley–Terry:

    loss = BCE(σ(β·[(log π(a) − log ref(a)) − (log π(b) − log ref(b))]), y)

with ``y`` = 1 when A won, 0 when B won and ½ for a tie (a tie asks for
equal log-ratios). IPO (Azar et al. 2023) replaces the logistic loss by a
squared one, ``(h − (2y − 1)/(2β))²`` on the log-ratio difference ``h``,
which stops pushing once a pair is ranked by a margin, and so overfits a
small set of comparisons less. β is the inverse strength of the pull away
from the prior: a larger β keeps the policy nearer.

With a few hundred comparisons DPO overfits fast, so a share of the
comparisons is held out and training stops when their loss stops improving
(the best epoch's weights are kept). The result is a policy directory like
``tune``'s (kind ``policy``, the actor's weights under ``actor.``), which
``generate``, ``evaluate`` and ``pool add`` accept.

Every comparison must be of melodies of the run's length (one run has one
length); anything else is an error before training starts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlcomposer.checkpoints import check_finite_loss
from rlcomposer.errors import RLComposerError
from rlcomposer.preferences.choices import CHOICE_SCORE
from rlcomposer.prior.model import MelodyPrior
from rlcomposer.validation import AT_LEAST_ONE, POSITIVE, Range, above, between, check_config

DPO_LOSSES = ("dpo", "ipo")


class DPOError(RLComposerError):
    """Comparisons that DPO cannot train on, or a bad DPO setting."""


@dataclass(frozen=True)
class DPOConfig:
    """How DPO fits the policy to the comparisons (keys ``dpo_*`` in a tune config)."""

    beta: float = 0.1
    """β: the implicit reward is β·log(π/π_ref); larger keeps the policy nearer the prior."""
    loss: str = "dpo"
    """``dpo`` (logistic) or ``ipo`` (squared, stops at a margin; at the same β it moves far less)."""
    epochs: int = 40
    """Most passes over the training comparisons (early stopping usually ends sooner)."""
    patience: int = 4
    """Stop after this many epochs without a lower held-out loss."""
    held_out_fraction: float = 0.2
    """Share of comparisons held out for early stopping (at least 10 comparisons)."""
    learning_rate: float = 1e-4
    """Adam learning rate of the policy (all of the prior's weights)."""
    batch_size: int = 32
    """Comparisons per gradient step."""
    min_comparisons: int = 20
    """Fewest decided comparisons to train on."""

    def __post_init__(self) -> None:
        check_config(self, {"beta": POSITIVE, "learning_rate": above(0, 1), "epochs": between(1, 100_000, whole=True),
                            "patience": AT_LEAST_ONE, "held_out_fraction": Range(0, 0.9, True, True),
                            "batch_size": between(1, 65_536, whole=True), "min_comparisons": AT_LEAST_ONE},
                     "dpo ")
        if self.loss not in DPO_LOSSES:
            raise DPOError(f"dpo loss must be one of {', '.join(DPO_LOSSES)}, got '{self.loss}'")


def comparison_arrays(comparisons: Sequence[Any], num_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens of A and B ``[N, T]`` and A's score ``[N]`` of the decided comparisons (skips dropped).

    A comparison is anything with ``tokens_a``, ``tokens_b`` and ``choice``
    (:class:`~rlcomposer.preferences.reward_model.PairLabel`).
    """
    decided = [c for c in comparisons if c.choice in CHOICE_SCORE]
    for c in decided:
        for side in ("a", "b"):
            length = len(getattr(c, f"tokens_{side}"))
            if length != num_steps:
                raise DPOError(f"a comparison has a melody of {length} steps; this run's melodies have "
                               f"{num_steps}: filter the comparisons to one length (e.g. by --tag)")
    if not decided:
        raise DPOError("no comparisons to train on (skips do not count): rate some pairs first")
    tokens_a = torch.as_tensor(np.stack([np.asarray(c.tokens_a) for c in decided]), dtype=torch.long)
    tokens_b = torch.as_tensor(np.stack([np.asarray(c.tokens_b) for c in decided]), dtype=torch.long)
    targets = torch.tensor([CHOICE_SCORE[c.choice] for c in decided], dtype=torch.float32)
    return tokens_a, tokens_b, targets


def _sequence_log_prob(model: MelodyPrior, tokens: torch.Tensor, condition=None) -> torch.Tensor:
    """log p(melody) = Σ_t log p(token_t | tokens_<t), shape ``[N]``."""
    return model.log_likelihood(tokens, condition).sum(dim=1)


def preference_loss(policy_ratio_a: torch.Tensor, policy_ratio_b: torch.Tensor, targets: torch.Tensor,
                    config: DPOConfig) -> torch.Tensor:
    """Mean DPO / IPO loss from the log-ratios log π − log ref of A and B."""
    margin = policy_ratio_a - policy_ratio_b
    if config.loss == "dpo":
        return torch.nn.functional.binary_cross_entropy_with_logits(config.beta * margin, targets)
    return ((margin - (2 * targets - 1) / (2 * config.beta)) ** 2).mean()


def train_dpo(comparisons: Sequence[Any], config: DPOConfig, prior: MelodyPrior, num_steps: int,
              rng: np.random.Generator, log: Callable[[str], None] = print,
              condition=None) -> tuple[MelodyPrior, dict[str, Any]]:
    """Fit a copy of ``prior`` to ``comparisons``; returns the policy (eval mode) and its metrics.

    ``condition`` (a :class:`~rlcomposer.prior.model.MelodyCondition`) is the
    melodies' metre and mode (one DPO run has one metre and length)."""
    tokens_a, tokens_b, targets = comparison_arrays(comparisons, num_steps)
    n = len(targets)
    if n < config.min_comparisons:
        raise DPOError(f"DPO needs at least {config.min_comparisons} decided comparisons, got {n}")
    order = rng.permutation(n)
    held = max(10, int(round(config.held_out_fraction * n)))
    held_idx, train_idx = order[:held], order[held:]
    reference = prior.eval()
    with torch.inference_mode():
        ref_a, ref_b = _sequence_log_prob(reference, tokens_a, condition), _sequence_log_prob(reference, tokens_b, condition)
    policy = copy.deepcopy(prior)
    policy.train()
    optimiser = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)

    def held_out() -> tuple[float, float]:
        policy.eval()
        with torch.no_grad():
            ratio_a = _sequence_log_prob(policy, tokens_a[held_idx], condition) - ref_a[held_idx]
            ratio_b = _sequence_log_prob(policy, tokens_b[held_idx], condition) - ref_b[held_idx]
            loss = float(preference_loss(ratio_a, ratio_b, targets[held_idx], config))
            decided = targets[held_idx] != 0.5
            right = ((ratio_a - ratio_b) > 0) == (targets[held_idx] == 1.0)
            accuracy = float(right[decided].float().mean()) if decided.any() else float("nan")
        policy.train()
        return loss, accuracy

    best_loss, best_accuracy = held_out()
    best_state, best_epoch, stale = copy.deepcopy(policy.state_dict()), 0, 0
    history = [{"epoch": 0, "held_out_loss": best_loss, "held_out_accuracy": best_accuracy}]
    for epoch in range(1, config.epochs + 1):
        shuffled = rng.permutation(train_idx)
        total = 0.0
        for start in range(0, len(shuffled), config.batch_size):
            batch = torch.as_tensor(shuffled[start:start + config.batch_size])
            ratio_a = _sequence_log_prob(policy, tokens_a[batch], condition) - ref_a[batch]
            ratio_b = _sequence_log_prob(policy, tokens_b[batch], condition) - ref_b[batch]
            loss = preference_loss(ratio_a, ratio_b, targets[batch], config)
            check_finite_loss(loss, "DPO", f"epoch {epoch}, comparison {start}",
                              f"dpo learning_rate={config.learning_rate:g}, dpo beta={config.beta:g}")
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        loss_now, accuracy_now = held_out()
        history.append({"epoch": epoch, "train_loss": total / max(len(train_idx), 1),
                        "held_out_loss": loss_now, "held_out_accuracy": accuracy_now})
        if loss_now < best_loss - 1e-6:
            best_loss, best_accuracy, best_epoch, stale = loss_now, accuracy_now, epoch, 0
            best_state = copy.deepcopy(policy.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    policy.load_state_dict(best_state)
    policy.eval()
    log(f"DPO ({config.loss}, β={config.beta:g}): {n} comparisons ({held} held out); best epoch {best_epoch}, "
        f"held-out loss {best_loss:.3f}, implicit-reward accuracy {best_accuracy:.1%}")
    metrics = {"comparisons": n, "held_out": held, "best_epoch": best_epoch, "held_out_loss": best_loss,
               "held_out_accuracy": best_accuracy, "history": history}
    return policy, metrics


__all__ = ["DPOConfig", "DPOError", "DPO_LOSSES", "comparison_arrays", "preference_loss", "train_dpo"]
