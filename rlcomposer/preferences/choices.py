"""What an A/B answer says: the one place the choices and their scores are written.

A comparison asks "which melody is better, A or B?". The answer is ``a``, ``b``,
``tie`` (about the same) or ``skip`` (no answer). :data:`CHOICE_SCORE` is what
a decided answer says of A: 1 if A won, 0 if B won, ½ for a tie (the target of
Bradley–Terry training, and how win-rates count ties); a skip says nothing.
"""

JUDGED_CHOICES = ("a", "b", "tie")
"""Answers that judge the pair."""
CHOICES = (*JUDGED_CHOICES, "skip")
"""Every answer the database accepts."""
CHOICE_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}
"""A's score for each judged answer."""
