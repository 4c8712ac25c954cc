"""Experiments: the closed loop (pool, ratings, reward model, tuning, evaluation) and its reports.

Owns :class:`~rlcomposer.experiments.loop.Experiment` with its config, round
state and report, and the side-by-side evaluation of models
(:mod:`~rlcomposer.experiments.evaluation`).

May import: every stage below it (foundation, music, corpus, prior,
preferences, rl, feedback); not the command line or the app.
"""
