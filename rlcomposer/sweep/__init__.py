"""Experiment sweeps on Ray Tune: many ``experiment run``\\ s from one sweep file, on one machine or a cluster.

* :mod:`rlcomposer.sweep.spec` — the sweep file (a base experiment config and a search space over its
  keys: grid and random choices) expanded into trials, every trial's config checked before any runs;
* :mod:`rlcomposer.sweep.runner` — the trials on Ray Tune (local Ray, or a cluster by address), each one
  experiment run in its own run folder; resume through Ray Tune's restore;
* :mod:`rlcomposer.sweep.report` — one table of every trial and of the groups of the swept keys
  (mean, standard deviation and 95% interval over seeds), and the frontier plots.

It sits above :mod:`rlcomposer.experiments` and below :mod:`rlcomposer.cli`. Ray is an optional
dependency (``pip install 'rlcomposer[sweep]'``), imported only when a sweep runs: the spec and the
report work without it.
"""
