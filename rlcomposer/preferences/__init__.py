"""Preferences: what a listener likes, and the reward model that learns it.

Owns reward functions (any callable ``Melody -> float``, found by name:
:mod:`~rlcomposer.preferences.reward_functions`), the reward-model ensemble
trained on comparisons and stars (:mod:`~rlcomposer.preferences.reward_model`)
and simulated listeners with their noise (:mod:`~rlcomposer.preferences.listeners`).
It knows nothing of the database: raters write through ``rlcomposer.feedback``.

May import: the foundation, ``music``, ``corpus`` and ``prior``.
"""
