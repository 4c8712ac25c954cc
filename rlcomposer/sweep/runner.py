"""Running a sweep on Ray Tune: local Ray by default, an existing cluster when given its address.

Each trial is one ``experiment run`` (:class:`~rlcomposer.experiments.loop.Experiment`)
in its own run folder ``OUT/trials/NAME/`` with the usual report, plots,
melodies and TensorBoard logs, plus ``trial.json`` (its config and results) when
it has finished. Ray Tune schedules the trials (each reserves
``cpus_per_trial`` CPUs and sets torch's threads to that many) and keeps its
experiment state in ``OUT/tune/``, which :func:`resume_sweep` restores
(``Tuner.restore``): finished trials are kept, the others run again from the
start of their experiment (same seeds, so the same results).

A sweep folder ``OUT/`` holds ``sweep.yaml`` (the resolved sweep file),
``sweep.json`` (what ``resume`` needs: the trials and the run settings),
``trials/`` and ``tune/``; ``sweep report`` adds the tables and plots.

On a cluster every node needs rlcomposer installed, and ``OUT`` must be a
folder every node can write (a shared file system), since the trials write their
run folders there directly.

Ray is imported only inside these functions: ``pip install 'rlcomposer[sweep]'``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from rlcomposer.sweep.spec import SweepError, SweepSpec, Trial, spec_to_dict

SWEEP_STATE = "sweep.json"
TRIAL_RESULT = "trial.json"
TUNE_DIR = "tune"
TRIALS_DIR = "trials"
SWEEP_FORMAT = 1


def require_ray():
    """``ray.tune``, or a one-line error naming the extra that installs it."""
    try:
        import ray  # noqa: F401
        from ray import tune
    except ImportError:
        raise SweepError("sweeps need Ray Tune, which is not installed: "
                         "pip install 'rlcomposer[sweep]'") from None
    return tune


@dataclass(frozen=True)
class SweepRunConfig:
    """How a sweep runs (the ``sweep run`` / ``sweep resume`` options)."""

    out: Path
    """The sweep folder (``runs/NAME``): trials, Ray Tune's state, tables and plots go there."""
    address: str | None = None
    """A Ray cluster to join: ``ray://HOST:PORT`` (Ray Client), ``HOST:PORT`` (its GCS) or ``auto``;
    None starts Ray on this machine for the sweep and stops it at the end."""
    num_cpus: int | None = None
    """CPUs a local Ray may use (None: all of this machine's); ignored with ``address``."""
    object_store_memory: int = 200 * 1024 * 1024
    """Bytes of a local Ray's object store (trials pass only small results through it)."""


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep run or resume ended with."""

    out: Path
    trials: int
    finished: int
    errored: list[str]
    """Names of trials that failed, with the first line of their error."""
    interrupted: bool
    seconds: float


# ---- the trial (runs in a Ray worker) ------------------------------------
def run_trial(trial_config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one experiment run in the trial's run folder, results reported."""
    from ray import tune

    result = execute_trial(trial_config["trial"])
    tune.report(result["results"])


def execute_trial(trial: dict[str, Any], log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one trial (``{"name", "params", "config", "run_dir", "threads", "cwd"}``) and write
    ``trial.json``; a trial that already has one is not run again."""
    import torch

    from rlcomposer.config import config_from_dict
    from rlcomposer.experiments.loop import Experiment, ExperimentConfig

    run_dir = Path(trial["run_dir"])
    done = run_dir / TRIAL_RESULT
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    if trial.get("cwd") and trial["cwd"] not in sys.path:
        sys.path.insert(0, trial["cwd"])  # module:function listeners, as the CLI finds them
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted attempt: start its experiment again (same seeds)
    run_dir.mkdir(parents=True)
    torch.set_num_threads(int(trial["threads"]))
    config = config_from_dict(ExperimentConfig, trial["config"], f"trial {trial['name']}")
    log_file = (run_dir / "trial.log").open("a", encoding="utf-8")

    def say(message: str) -> None:
        log_file.write(message + "\n")
        log_file.flush()
        if log is not None:
            log(message)

    started = time.monotonic()
    try:
        experiment = Experiment(config, run_dir, None, log=say, progress=False)
        rounds = experiment.run()
        experiment.write_report()
    finally:
        log_file.close()
    seconds = time.monotonic() - started
    result = {"name": trial["name"], "params": trial["params"], "config": trial["config"],
              "results": trial_results(rounds[-1], seconds, int(trial["threads"]))}
    temporary = done.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=2, default=_plain) + "\n", encoding="utf-8")
    temporary.replace(done)  # written whole or not at all: resume trusts it
    return result


def trial_results(last, seconds: float, threads: int) -> dict[str, Any]:
    """The figures of a trial's last round that the sweep report tabulates (None where not measured)."""
    held_out = last.reward_model.get("held_out", {}) or {}
    musicality = last.musicality or {}
    best_name = next((name for name in musicality if name.startswith("best-of-")), None)

    def music(column: str | None, key: str):
        value = (musicality.get(column) or {}).get(key) if column else None
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    return {
        "win_rate": last.win_rate,
        "kl": last.kl_tuned,
        "best_of_n_win_rate": last.best_of_n_win_rate,
        "best_of_n": last.best_of_n,
        "kl_best_of_n": last.kl_best_of_n,
        "labels": last.comparisons,
        "rm_accuracy": held_out.get("accuracy"),
        "rm_ece": held_out.get("ece"),
        "rm_accuracy_noiseless": last.reward_model.get("noiseless_accuracy"),
        "style_overlap": music("tuned", "style_overlap"),
        "style_overlap_best_of_n": music(best_name, "style_overlap"),
        "style_overlap_prior": music("prior", "style_overlap"),
        "distinct_patterns": music("tuned", "distinct_pattern_ratio"),
        "collapse_warnings": len(last.collapse_warnings),
        "tune_seconds": last.tune_seconds,
        "wall_seconds": seconds,
        "threads": threads,
    }


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# ---- the driver -----------------------------------------------------------
def _trial_payload(trial: Trial, out: Path, threads: int) -> dict[str, Any]:
    return {"index": trial.index, "name": trial.name, "params": trial.params, "config": trial.config,
            "run_dir": str((out / TRIALS_DIR / trial.name).resolve()), "threads": threads,
            "cwd": os.getcwd()}


def read_sweep_state(out: str | Path) -> dict[str, Any]:
    """``sweep.json`` of a sweep folder, or a one-line error when ``out`` is not one."""
    out = Path(out)
    path = out / SWEEP_STATE
    if not path.is_file():
        raise SweepError(f"'{out}' is not a sweep folder (no {SWEEP_STATE}; "
                         "`rlcomposer sweep run SWEEP.yaml --out DIR` makes one)")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SweepError(f"{path}: not a readable sweep state ({str(error).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != SWEEP_FORMAT or not isinstance(state.get("trials"), list):
        raise SweepError(f"{path}: not a sweep state written by this version of rlcomposer")
    return state


def finished_trials(out: str | Path) -> dict[str, dict[str, Any]]:
    """``trial.json`` of every finished trial of a sweep folder, by trial name."""
    found = {}
    for path in sorted((Path(out) / TRIALS_DIR).glob(f"*/{TRIAL_RESULT}")):
        try:
            found[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def check_address(address: str) -> None:
    """Fail in one line, before Ray tries for a minute, when ``HOST:PORT`` does not answer."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address '{address}': expected ray://HOST:PORT, HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as error:
        raise SweepError(f"--address '{address}': no Ray cluster answers there "
                         f"({error.strerror or error}); start one with `ray start --head`") from None


def _check_cpus(ray, cpus_per_trial: int) -> None:
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < cpus_per_trial:  # Ray Tune would wait for them forever
        raise SweepError(f"each trial needs {cpus_per_trial} CPUs (cpus_per_trial) but the Ray "
                         f"cluster has {cpus:g}: lower cpus_per_trial or add nodes")


def _init_ray(run: SweepRunConfig):
    import ray

    if run.address is not None:
        check_address(run.address)
        try:
            ray.init(address=run.address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise SweepError(f"--address '{run.address}': cannot join the Ray cluster "
                             f"({str(error).splitlines()[0]})") from None
        return ray
    # "local": always a new Ray of its own, never a cluster that `ray start` left running here
    ray.init(address="local", num_cpus=run.num_cpus or os.cpu_count(), object_store_memory=run.object_store_memory,
             include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    return ray


def run_sweep(spec: SweepSpec, run: SweepRunConfig, say: Callable[[str], None] = print) -> SweepOutcome:
    """Run every trial of ``spec`` on Ray Tune into ``run.out`` (a new or empty folder)."""
    tune = require_ray()
    out = run.out
    if out.exists() and any(out.iterdir()):
        if (out / SWEEP_STATE).is_file():
            raise SweepError(f"--out '{out}' already holds a sweep: `rlcomposer sweep resume {out}` "
                             "finishes it, or choose another folder")
        raise SweepError(f"--out '{out}' is not empty: choose a new folder for the sweep")
    trials = spec.trials()
    ray = _init_ray(run)  # an address that does not answer fails here, before anything is written
    try:
        _check_cpus(ray, spec.cpus_per_trial)
        return _start(tune, spec, trials, run, say)
    finally:
        ray.shutdown()  # a local Ray stops; a cluster stays up (this only disconnects)


def _start(tune, spec: SweepSpec, trials: list[Trial], run: SweepRunConfig, say) -> SweepOutcome:
    out = run.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.yaml").write_text(yaml.safe_dump(spec_to_dict(spec), sort_keys=False), encoding="utf-8")
    payloads = [_trial_payload(trial, out, spec.cpus_per_trial) for trial in trials]
    state = {"format": SWEEP_FORMAT, "swept_keys": spec.swept_keys, "cpus_per_trial": spec.cpus_per_trial,
             "max_concurrent_trials": spec.max_concurrent_trials, "trials": payloads,
             "run": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(run).items()}}
    (out / SWEEP_STATE).write_text(json.dumps(state, indent=2, default=_plain) + "\n", encoding="utf-8")
    say(f"sweep {out}: {len(trials)} trials, {spec.cpus_per_trial} CPU(s) and torch thread(s) each, "
        f"on {'Ray at ' + run.address if run.address else 'a local Ray'}")
    return _fit(tune, out, state, run, say, restore=False)


def resume_sweep(out: str | Path, run: SweepRunConfig | None = None,
                 say: Callable[[str], None] = print) -> SweepOutcome:
    """Finish the trials of a sweep folder that did not finish (Ray Tune's restore); finished ones stay."""
    out = Path(out)
    state = read_sweep_state(out)
    tune = require_ray()
    from ray.tune import Tuner

    if not Tuner.can_restore(str((out / TUNE_DIR).resolve())):
        raise SweepError(f"'{out}' is a sweep folder without Ray Tune's state ({TUNE_DIR}/): "
                         "its sweep never started; run it again with `rlcomposer sweep run`")
    run = run or SweepRunConfig(out=out)
    done = finished_trials(out)
    say(f"sweep {out}: resuming; {len(done)} of {len(state['trials'])} trials finished before, "
        "they are not run again")
    ray = _init_ray(run)
    try:
        _check_cpus(ray, state["cpus_per_trial"])
        return _fit(tune, out, state, run, say, restore=True)
    finally:
        ray.shutdown()  # a local Ray stops; a cluster stays up (this only disconnects)


def _fit(tune, out: Path, state: dict[str, Any], run: SweepRunConfig, say, restore: bool) -> SweepOutcome:
    from ray.tune import RunConfig, Tuner
    from ray.tune import TuneConfig as RayTuneConfig

    from rlcomposer.sweep.progress import ProgressLines

    payloads = state["trials"]
    started = time.monotonic()

    progress = ProgressLines(len(payloads), say)
    trainable = tune.with_resources(run_trial, {"cpu": state["cpus_per_trial"]})
    storage = str(out.resolve())
    if restore:
        tuner = Tuner.restore(str((out / TUNE_DIR).resolve()), trainable, resume_unfinished=True,
                              resume_errored=False, restart_errored=True)
        # the restored run config carries the first run's callbacks (pickled): print through this one
        if tuner._local_tuner is not None:  # (through Ray Client the tuner runs remotely)
            tuner._local_tuner.get_run_config().callbacks = [progress]
    else:
        tuner = Tuner(
            trainable,
            param_space={"trial": tune.grid_search(payloads)},
            tune_config=RayTuneConfig(
                max_concurrent_trials=state["max_concurrent_trials"] or None,
                trial_dirname_creator=lambda trial: trial.config["trial"]["name"],
                trial_name_creator=lambda trial: trial.config["trial"]["name"]),
            run_config=RunConfig(name=TUNE_DIR, storage_path=storage, verbose=0,
                                 callbacks=[progress]),
        )
    results = tuner.fit()
    done = finished_trials(out)
    errored = []
    for result in results:
        if result.error is not None:
            name = (result.config or {}).get("trial", {}).get("name", "?")
            errored.append(f"{name}: {str(result.error).strip().splitlines()[-1][:300]}")
    interrupted = len(done) + len(errored) < len(payloads)
    return SweepOutcome(out=out, trials=len(payloads), finished=len(done), errored=errored,
                        interrupted=interrupted, seconds=time.monotonic() - started)


__all__ = ["SweepOutcome", "SweepRunConfig", "execute_trial", "finished_trials", "read_sweep_state",
           "require_ray", "resume_sweep", "run_sweep", "trial_results"]
