"""The sweep file: a base experiment config and a search space over its keys, expanded into trials.

A sweep file is YAML with these keys (every other key is an error)::

    experiment: ../configs/quickstart.yaml   # the base experiment config (relative to this file)
    set: {evaluation_pairs: 300}             # fixed overrides of the base config (optional)
    grid:                                    # every combination of these values is a trial
      tune.kl_target: [1.5, 3]
      seed: [0, 1, 2]
    random:                                  # keys drawn from choices, `samples` times per grid point
      strategy: [random, active]
    samples: 1                               # draws of the random keys per grid point
    sampler_seed: 0                          # seeds the random draws (an explicit generator)
    cpus_per_trial: 1                        # CPUs Ray reserves for a trial; torch uses as many threads
    max_concurrent_trials: 0                 # 0: as many as the cluster's CPUs allow

A key is an :class:`~rlcomposer.experiments.loop.ExperimentConfig` key (``seed``,
``listener``, ``comparisons_per_round``, ``noise_temperature``, ...) or a dotted key
into one of its mappings (``tune.kl_target``, ``tune.algorithm``,
``reward_model.ensemble_size``). Every trial's config is built (and so checked)
when the sweep is loaded, before any trial starts.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlcomposer.config import ConfigError, config_to_dict, load_yaml, read_text_file
from rlcomposer.errors import RLComposerError
from rlcomposer.experiments.loop import ExperimentConfig, load_experiment_config

SEED_KEY = "seed"
"""The swept key whose values are replicates: the report averages over it."""
SWEEP_KEYS = ("experiment", "set", "grid", "random", "samples", "sampler_seed", "cpus_per_trial",
              "max_concurrent_trials")
MAPPING_KEYS = ("tune", "reward_model")
"""ExperimentConfig fields that are mappings of another config's keys (dotted sweep keys reach into them)."""


class SweepError(RLComposerError):
    """A sweep file or sweep folder that cannot be used."""


@dataclass(frozen=True)
class Trial:
    """One experiment run of a sweep."""

    index: int
    """Position in the sweep (0-based): fixes the order trials are started in."""
    name: str
    """Folder name of its run under ``trials/`` (its swept values, readable)."""
    params: dict[str, Any]
    """The swept keys and this trial's values (grid and random keys)."""
    config: dict[str, Any]
    """The resolved experiment config (every key) the trial runs."""


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file."""

    experiment: Path
    """The base experiment config (absolute path)."""
    fixed: dict[str, Any] = field(default_factory=dict)
    """Overrides applied to every trial (the file's ``set``)."""
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Swept keys: every combination of their values is a trial."""
    random: dict[str, list[Any]] = field(default_factory=dict)
    """Keys drawn uniformly from their choices, ``samples`` times per grid combination."""
    samples: int = 1
    """Draws of the random keys per grid combination."""
    sampler_seed: int = 0
    """Seeds the generator that draws the random keys."""
    cpus_per_trial: int = 1
    """CPUs Ray reserves per trial; the trial sets torch's threads (and ``tune.threads``) to it."""
    max_concurrent_trials: int = 0
    """Most trials at once (0: as many as the cluster's free CPUs allow)."""

    @property
    def swept_keys(self) -> list[str]:
        return [*self.grid, *self.random]

    def trials(self) -> list[Trial]:
        """Every trial, its config built (bad keys or values raise a one-line SweepError)."""
        base = _base_values(self.experiment)
        rng = np.random.default_rng(self.sampler_seed)
        trials = []
        combinations = list(itertools.product(*self.grid.values())) if self.grid else [()]
        for values in combinations:
            for _ in range(self.samples if self.random else 1):
                params = dict(zip(self.grid, values, strict=True))
                for key, choices in self.random.items():
                    params[key] = copy.deepcopy(choices[int(rng.integers(len(choices)))])
                index = len(trials)
                name = trial_name(index, params)
                config = build_trial_config(base, {**self.fixed, **params}, name, self.cpus_per_trial,
                                            where=f"trial {name}")
                trials.append(Trial(index, name, params, config))
        return trials


def trial_name(index: int, params: dict[str, Any]) -> str:
    """``003-kl_target=3,seed=1``: the index, then the swept values (safe as a folder name)."""
    parts = [f"{key.split('.')[-1]}={_short(value)}" for key, value in params.items()]
    text = re.sub(r"[^A-Za-z0-9_.,=+-]", "-", ",".join(parts))[:80]
    return f"{index:03d}-{text}" if text else f"{index:03d}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def _base_values(path: Path) -> dict[str, Any]:
    """The base experiment config as a plain mapping (checked by loading it)."""
    try:
        return config_to_dict(load_experiment_config(path))
    except RLComposerError as error:
        raise SweepError(f"sweep base experiment: {error}") from None


def build_trial_config(base: dict[str, Any], overrides: dict[str, Any], name: str, cpus: int,
                       where: str = "sweep") -> dict[str, Any]:
    """``base`` with ``overrides`` (dotted keys reach into ``tune`` / ``reward_model``), the trial's
    name, and torch threads from its CPU budget unless the sweep sets ``tune.threads``; checked by
    building the ExperimentConfig."""
    values = copy.deepcopy(base)
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot:
            if head not in MAPPING_KEYS:
                raise SweepError(f"{where}: '{key}': only {', '.join(k + '.KEY' for k in MAPPING_KEYS)} "
                                 "may be dotted (the other experiment keys are plain)")
            if not rest or "." in rest:
                raise SweepError(f"{where}: '{key}' is not of the form {head}.KEY")
            values.setdefault(head, {})
            values[head] = {**(values[head] or {}), rest: value}
        elif key in MAPPING_KEYS and isinstance(value, dict):
            values[key] = {**(values.get(key) or {}), **value}
        else:
            values[key] = value
    values["name"] = name
    values["tune"] = dict(values.get("tune") or {})
    tune_overrides = overrides.get("tune") if isinstance(overrides.get("tune"), dict) else {}
    if "tune.threads" not in overrides and "threads" not in tune_overrides:
        values["tune"]["threads"] = cpus  # the CPU budget sets torch's threads, unless the sweep does
    try:
        config = _experiment_config(values)
    except RLComposerError as error:
        raise SweepError(f"{where}: {error}") from None
    return config_to_dict(config)


def _experiment_config(values: dict[str, Any]) -> ExperimentConfig:
    from rlcomposer.config import config_from_dict

    return config_from_dict(ExperimentConfig, values, "experiment config")


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (see the module docstring); errors are one line naming the file."""
    path = Path(path)
    try:
        loaded = load_yaml(read_text_file(path, f"sweep file {path}"), f"sweep file {path}")
    except ConfigError as error:  # not a regular file, too large, not UTF-8, an alias bomb
        raise SweepError(str(error)) from None
    except RecursionError:
        raise SweepError(f"sweep file {path}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as error:
        raise SweepError(f"sweep file {path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise SweepError(f"sweep file {path}: expected a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = [key for key in loaded if key not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"sweep file {path}: unknown key '{unknown[0]}' (known keys: {', '.join(SWEEP_KEYS)})")
    if not loaded.get("experiment") or not isinstance(loaded["experiment"], str):
        raise SweepError(f"sweep file {path}: 'experiment' must name the base experiment config file")
    experiment = (path.parent / loaded["experiment"]).resolve()
    if not experiment.is_file():
        raise SweepError(f"sweep file {path}: base experiment config '{loaded['experiment']}' not found "
                         f"(looked for {experiment})")
    spaces = {}
    for section in ("grid", "random"):
        space = loaded.get(section) or {}
        if not isinstance(space, dict):
            raise SweepError(f"sweep file {path}: '{section}' must map experiment keys to lists of values")
        for key, values in space.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"sweep file {path}: {section} key '{key}' needs a non-empty list of values")
        spaces[section] = {str(k): v for k, v in space.items()}
    both = set(spaces["grid"]) & set(spaces["random"])
    if both:
        raise SweepError(f"sweep file {path}: key '{sorted(both)[0]}' is in both grid and random")
    if not spaces["grid"] and not spaces["random"]:
        raise SweepError(f"sweep file {path}: the search space is empty: give 'grid' or 'random' "
                         "keys with lists of values")
    fixed = loaded.get("set") or {}
    if not isinstance(fixed, dict):
        raise SweepError(f"sweep file {path}: 'set' must map experiment keys to values")
    numbers = {}
    for key, default, least in (("samples", 1, 1), ("sampler_seed", 0, 0), ("cpus_per_trial", 1, 1),
                                ("max_concurrent_trials", 0, 0)):
        value = loaded.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SweepError(f"sweep file {path}: '{key}' must be an integer of at least {least}, got {value!r}")
        numbers[key] = value
    spec = SweepSpec(experiment=experiment, fixed={str(k): v for k, v in fixed.items()},
                     grid=spaces["grid"], random=spaces["random"], **numbers)
    trials = spec.trials()  # every trial's config is checked now, before anything runs
    _check_listeners({trial.config["listener"] for trial in trials}, path)
    return spec


def _check_listeners(listeners: set[str], path: Path) -> None:
    """Every trial's listener must load now (a typo would otherwise fail each trial in turn)."""
    from rlcomposer.experiments.loop import PEOPLE
    from rlcomposer.preferences.listeners import load_listener

    for listener in sorted(listeners):
        if listener == PEOPLE:
            raise SweepError(f"sweep file {path}: listener 'people' cannot be swept (a trial would wait for "
                             "ratings): use `rlcomposer experiment run` for people, simulated listeners here")
        try:
            load_listener(listener)
        except RLComposerError as error:
            raise SweepError(f"sweep file {path}: {error}") from None


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """The spec as written into a sweep folder (``sweep.yaml``), the base config by absolute path."""
    return {"experiment": str(spec.experiment), "set": spec.fixed, "grid": spec.grid, "random": spec.random,
            "samples": spec.samples, "sampler_seed": spec.sampler_seed,
            "cpus_per_trial": spec.cpus_per_trial, "max_concurrent_trials": spec.max_concurrent_trials}


__all__ = ["SEED_KEY", "SweepError", "SweepSpec", "Trial", "build_trial_config", "load_sweep",
           "spec_to_dict", "trial_name"]
