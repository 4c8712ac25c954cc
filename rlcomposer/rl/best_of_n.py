"""Best-of-N sampling: the baseline beside PPO and DPO, with its KL in closed form."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.reward_functions import score_melodies
from rlcomposer.prior.continuation import shift_to_c
from rlcomposer.prior.model import MelodyCondition, MelodyPrior
from rlcomposer.prior.registry import MelodyModel, PriorModel
from rlcomposer.rl import DEFAULT_PICK_KL_WEIGHT
from rlcomposer.rl.kl import best_of_n_kl, log_ratio_per_melody, policy_best_of_k_kl


def best_of_each(candidates: Sequence[Melody], scores: np.ndarray, n: int) -> list[Melody]:
    """The best of each ``n`` consecutive candidates by ``scores``, with ``best_of`` and ``reward``
    in each chosen melody's metadata (how best-of-N picks)."""
    rows = np.asarray(scores, dtype=np.float64).reshape(-1, n)
    return [candidates[row * n + int(column)].with_metadata(best_of=n, reward=float(rows[row, column]))
            for row, column in enumerate(rows.argmax(axis=1))]


class BestOfNModel:
    """Best-of-N sampling: draw N melodies from a model, keep the one the reward likes best.

    The baseline beside PPO: no training, and its distance from the sampling
    model is known in closed form, ``KL = log N - (N - 1) / N`` nats per melody
    (Stiennon et al. 2020), so it can be compared with a tuned policy at equal KL.
    """

    def __init__(self, base: MelodyModel, reward_fn, n: int, reward_name: str = "reward"):
        if n < 1:
            raise RLComposerError(f"--best-of must be at least 1, got {n}")
        self.base = base
        self.reward_fn = reward_fn
        self.n = n
        self.reward_name = reward_name
        self.name = f"best-of-{n}({base.name})"

    @property
    def kl_to_base_per_melody(self) -> float:
        return best_of_n_kl(self.n)

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None, condition=None):
        candidates = self.base.sample(num_melodies * self.n, num_steps, rng, temperature, top_k,
                                      condition=condition)
        return best_of_each(candidates, score_melodies(self.reward_fn, candidates, self.reward_name), self.n)


def kl_weighted_picks(rewards: np.ndarray, log_ratios: np.ndarray, weight: float, k: int) -> np.ndarray:
    """For each ``k`` consecutive candidates, the column with the highest reward (standardised over
    all of them) minus ``weight`` × its log π/p (:class:`PolicyBestOfKModel`'s pick)."""
    spread = rewards.std() if rewards.std() > 0 else 1.0
    return ((rewards - rewards.mean()) / spread - weight * log_ratios).reshape(-1, k).argmax(axis=1)


class PolicyBestOfKModel(BestOfNModel):
    """Best-of-k from a tuned policy: a cheap mode between the policy and best-of-N from the prior.

    The policy moves towards the reward by some KL; choosing the best of k of its melodies
    under the reward moves the rest of the way, with k candidates a melody instead of
    best-of-N's tens or hundreds. Each chosen melody records ``log_ratio`` in its metadata
    (Σ_t log π/p under the policy and the prior it was tuned from, on the melody as sampled),
    so that :meth:`kl_estimate` can say how far from the prior the chosen melodies are.

    With ``kl_weight`` c > 0 the pick is the candidate with the highest z − c·log π/p, z its
    reward standardised over the candidates drawn together: the best of k by its importance
    weight toward the prior tilted by the reward (log p·e^{r/β}/π = r/β − log π/p), so a
    candidate the policy made likelier than the prior did must earn it; the chosen melodies sit
    nearer the prior than the plain best of k's.
    """

    def __init__(self, policy: MelodyPrior, prior: MelodyPrior, reward_fn, k: int,
                 reward_name: str = "reward", name: str = "policy", kl_weight: float = DEFAULT_PICK_KL_WEIGHT):
        super().__init__(PriorModel(policy, name), reward_fn, k, reward_name)
        if not np.isfinite(kl_weight) or kl_weight < 0:
            raise RLComposerError(f"the best-of-k pick's KL weight must be 0 or more, got {kl_weight}")
        self.policy = policy
        self.prior = prior
        self.kl_weight = kl_weight

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None, condition=None):
        if self.kl_weight == 0:
            chosen = super().sample(num_melodies, num_steps, rng, temperature, top_k, condition=condition)
            tokens = torch.as_tensor(np.stack([m.tokens for m in chosen])).long()
            ratios = log_ratio_per_melody(self.policy, self.prior, tokens, condition).numpy()
            return [m.with_metadata(log_ratio=float(r)) for m, r in zip(chosen, ratios, strict=True)]
        candidates = self.base.sample(num_melodies * self.n, num_steps, rng, temperature, top_k, condition=condition)
        tokens = torch.as_tensor(np.stack([m.tokens for m in candidates])).long()
        ratios = log_ratio_per_melody(self.policy, self.prior, tokens, condition).numpy()
        rewards = np.asarray(score_melodies(self.reward_fn, candidates, self.reward_name), dtype=np.float64)
        picks = kl_weighted_picks(rewards, ratios, self.kl_weight, self.n)
        return [candidates[row * self.n + int(column)].with_metadata(
                    best_of=self.n, reward=float(rewards[row * self.n + column]),
                    log_ratio=float(ratios[row * self.n + column]))
                for row, column in enumerate(picks)]

    def kl_estimate(self, melodies: Sequence[Melody]) -> float:
        """KL to the prior per melody of these chosen melodies (:func:`policy_best_of_k_kl`):
        their mean log π/p plus best-of-k's ``log k − (k − 1)/k``."""
        ratios = [m.metadata.get("log_ratio") for m in melodies]
        if not ratios or any(r is None for r in ratios):
            raise RLComposerError("a KL estimate needs melodies sampled by this policy + best-of-k")
        return policy_best_of_k_kl(float(np.mean(ratios)), self.n)


def pick_kl_weight_for_target(policy: MelodyPrior, prior: MelodyPrior, reward_fn, k: int, kl_target: float,
                              num_steps: int, rng: np.random.Generator, condition: MelodyCondition | None = None,
                              num_melodies: int = 1024, reward_name: str = "reward") -> tuple[float, float]:
    """The pick weight c (:class:`PolicyBestOfKModel`) at which policy + best-of-k's KL to the prior
    is ``kl_target``, and that KL: ``num_melodies`` × k candidates are drawn from the policy once and
    each c's pick and KL (chosen melodies' mean log π/p + best-of-k's term) read off them; the KL
    falls as c grows, so c is bisected on [0, 8]. 0 when even the plain pick stays below the target
    (the KL then below it); 8 when no weight brings it down to the target (best-of-k alone adds
    log k − (k − 1)/k)."""
    candidates = PriorModel(policy, "policy").sample(num_melodies * k, num_steps, rng, condition=condition)
    tokens = torch.as_tensor(np.stack([m.tokens for m in candidates])).long()
    ratios = log_ratio_per_melody(policy, prior, tokens, condition).numpy()
    rewards = np.asarray(score_melodies(reward_fn, candidates, reward_name), dtype=np.float64)
    rows = ratios.reshape(-1, k)

    def kl_at(weight: float) -> float:
        picks = kl_weighted_picks(rewards, ratios, weight, k)
        return policy_best_of_k_kl(float(rows[np.arange(len(picks)), picks].mean()), k)

    if kl_at(0.0) <= kl_target:
        return 0.0, kl_at(0.0)
    low, high = 0.0, 8.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if kl_at(middle) > kl_target else (low, middle)
    return high, kl_at(high)


PICK_FILE = "pick.json"
"""Beside a policy an experiment tuned: the pick weight its round found for policy + best-of-k."""


def record_pick(policy_dir: Path, k: int, weight: float, kl_target: float | None, reward_dir: Path) -> Path:
    """Write :data:`PICK_FILE` into ``policy_dir``: k, the pick weight, the KL target it was found for and
    the reward model (a path relative to the policy), so that ``generate --model POLICY --best-of k
    --reward RM`` picks as the round did."""
    from rlcomposer.checkpoints import atomic_write_text

    record = {"best_of_k": int(k), "pick_kl_weight": float(weight), "kl_target": kl_target,
              "reward_model": os.path.relpath(Path(reward_dir).resolve(), Path(policy_dir).resolve())}
    path = Path(policy_dir) / PICK_FILE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def recorded_pick_weight(policy_dir: str | Path, k: int, reward: str | Path) -> tuple[float, float | None] | None:
    """The pick weight (and its KL target) recorded beside ``policy_dir`` for best-of-``k`` under the
    reward model ``reward``; None when there is no record, or it is for another k or reward model.
    A record that does not read raises one line naming it."""
    path = Path(policy_dir) / PICK_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        weight, target = float(record["pick_kl_weight"]), record.get("kl_target")
        same_k = int(record["best_of_k"]) == k
        reward_dir = (Path(policy_dir) / str(record["reward_model"])).resolve()
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise RLComposerError(f"'{path}' is not a pick record ({type(error).__name__}: {error}); delete it "
                              "or give --pick-kl-weight") from None
    if not np.isfinite(weight) or weight < 0:
        raise RLComposerError(f"'{path}': pick_kl_weight {weight} must be 0 or more")
    if not same_k or reward_dir != Path(reward).resolve():
        return None
    return weight, None if target is None else float(target)


class PriorUnavailable(RLComposerError):
    """The prior a policy was tuned from does not load (moved or deleted): no KL can be stated."""


def tuned_from_prior(policy: MelodyPrior, where: str, what: str) -> MelodyPrior:
    """The prior a loaded tuned policy was tuned from (``tuned_from``); else :class:`PriorUnavailable`
    saying that the KL of ``what`` is not stated."""
    from rlcomposer.prior.model import load_prior

    prior_spec = policy.tuned_from or "prior"
    try:
        return load_prior(prior_spec)
    except RLComposerError as error:
        raise PriorUnavailable(f"policy '{where}' was tuned from prior '{prior_spec}', which does not "
                               f"load ({error}); the KL of {what} is not stated") from None


def policy_best_of_k(policy: MelodyPrior, reward_fn, k: int, reward_name: str = "reward",
                     name: str = "policy", where: str | None = None,
                     kl_weight: float = DEFAULT_PICK_KL_WEIGHT) -> PolicyBestOfKModel:
    """Best-of-k from a loaded tuned policy (``name``; loaded from ``where``), beside the prior it
    was tuned from (``tuned_from``), picking with ``kl_weight`` (see :class:`PolicyBestOfKModel`)."""
    prior = tuned_from_prior(policy, where or name, f"its best-of-{k} melodies")
    return PolicyBestOfKModel(policy, prior, reward_fn, k, reward_name, name, kl_weight)


def continuation_kl(model: MelodyPrior, opening: Melody, continuations: Sequence[Melody], best_of: int,
                    where: str = "policy") -> float | None:
    """KL to the prior per continuation of ``opening`` (what ``continue`` states): best-of-N from the
    prior, ``log N − (N − 1)/N`` (None without choosing); from a tuned policy, the mean log π/p of the
    continued steps (in the model's key, C) plus best-of-k's term, as :meth:`PolicyBestOfKModel.kl_estimate`.
    A policy whose prior does not load raises :class:`PriorUnavailable`."""
    if model.tuned_condition is None:
        return best_of_n_kl(best_of) if best_of > 1 else None
    prior = tuned_from_prior(model, where, "its continuations")
    shift = shift_to_c(opening)
    steps = continuations[0].num_steps
    tokens = torch.as_tensor(np.stack([m.transpose(shift, Key("C", m.key.mode)).tokens
                                       for m in continuations])).long()
    condition = MelodyCondition(opening.metre, opening.key.mode, steps, opening.pickup_steps)
    ratios = log_ratio_per_melody(model, prior, tokens, condition, start=opening.num_steps).numpy()
    return policy_best_of_k_kl(float(np.mean(ratios)), best_of)
