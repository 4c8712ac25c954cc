"""The melody prior: the model, its training, the n-gram baseline, sampling and export.

Owns :class:`~rlcomposer.prior.model.MelodyPrior` (a GRU over tokens with the
metric position as input) and the shipped default, its training by maximum
likelihood (:mod:`~rlcomposer.prior.training`), the n-gram baseline
(:mod:`~rlcomposer.prior.ngram`), melody models by name (``prior``,
``corpus``, ``random`` or a directory: :mod:`~rlcomposer.prior.registry`) and
sampling to files (:mod:`~rlcomposer.prior.generation`).

May import: the foundation, ``rlcomposer.music`` and ``rlcomposer.corpus``.
"""
