"""Reinforcement learning: composition as a Gymnasium environment, and the ways to tune the prior.

Owns ``rlcomposer/Melody-v0`` (:mod:`~rlcomposer.rl.environment`), the
actor-critic policy that starts as the prior (:mod:`~rlcomposer.rl.policy`),
sequence-level PPO (:mod:`~rlcomposer.rl.sequence_ppo`), ``tune`` with its
callbacks (:mod:`~rlcomposer.rl.tuning`), KL(policy‖prior)
(:mod:`~rlcomposer.rl.kl`) and best-of-N sampling (:mod:`~rlcomposer.rl.best_of_n`).

May import: the foundation, ``music``, ``corpus``, ``prior`` and ``preferences``.
"""

ALGORITHMS = ("sequence", "stock", "dpo")
"""Ways ``tune`` can tune the prior: sequence-level PPO, SB3's stock PPO, or DPO on the comparisons."""
