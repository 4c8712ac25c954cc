"""Best-of-N sampling: the baseline beside PPO and DPO, with its KL in closed form."""

from __future__ import annotations

from rlcomposer.errors import RLComposerError
from rlcomposer.preferences.reward_functions import score_melodies
from rlcomposer.prior.registry import MelodyModel
from rlcomposer.rl.kl import best_of_n_kl


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
        scores = score_melodies(self.reward_fn, candidates, self.reward_name).reshape(num_melodies, self.n)
        best = scores.argmax(axis=1)
        return [
            candidates[row * self.n + int(column)].with_metadata(
                best_of=self.n, reward=float(scores[row, column]))
            for row, column in enumerate(best)
        ]
