"""Reinforcement learning: composition as a Gymnasium environment, and the ways to tune the prior.

Owns ``rlcomposer/Melody-v0`` (:mod:`~rlcomposer.rl.environment`), the
actor-critic policy that starts as the prior (:mod:`~rlcomposer.rl.policy`),
sequence-level PPO (:mod:`~rlcomposer.rl.sequence_ppo`), ``tune`` with its
callbacks (:mod:`~rlcomposer.rl.tuning`), KL(policy‖prior)
(:mod:`~rlcomposer.rl.kl`) and best-of-N sampling (:mod:`~rlcomposer.rl.best_of_n`).

May import: the foundation, ``music``, ``corpus``, ``prior`` and ``preferences``.
"""

ALGORITHMS = ("sequence", "stock", "dpo", "vbon", "rloo", "vbon-rloo", "bond")
"""Ways ``tune`` can tune the prior: sequence-level PPO (``sequence``), SB3's stock PPO, DPO on the
comparisons, and sequence PPO on the quantile reward of variational best-of-N (``vbon``), with
leave-one-out baselines instead of a critic (``rloo``), or both (``vbon-rloo``); or best-of-N
distillation (``bond``: maximum likelihood on best-of-N's melodies, no PPO)."""

QUANTILE_ALGORITHMS = ("vbon", "vbon-rloo")
"""Algorithms that optimise the reward's log-quantile under the prior (vBoN) at β = 1/(N − 1)."""

LEAVE_ONE_OUT_ALGORITHMS = ("rloo", "vbon-rloo")
"""Algorithms whose advantage is a melody's return minus the mean of the others' (RLOO)."""

DEFAULT_PICK_KL_WEIGHT = 0.25
"""How much policy + best-of-k's pick weighs a candidate's log π/p against its standardised
reward (:class:`~rlcomposer.rl.best_of_n.PolicyBestOfKModel`), in ``generate`` and ``experiment run``.
Chosen on the listener panel's choosing half (members 2, 7, 10, seed 0, ``rloo`` policies at 1.2
nats, best-of-8; ``experiments/policy_pick_eval.py``) among 0, 0.25, 0.5 and 0.75: median gap to
best-of-N at equal KL −0.016 at 3.66 nats (0), +0.021 at 3.18 (0.25), +0.014 at 2.04 (0.5),
−0.016 at 1.20 (0.75). The candidates the policy moved furthest from the prior are also the
ones the reward model overrates: weighing them down lowers the KL and keeps the win-rate."""
