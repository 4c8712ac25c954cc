"""``rlcomposer sweep run``, ``sweep resume`` and ``sweep report``: many experiment runs on Ray Tune.

Ray is optional (``pip install 'rlcomposer[sweep]'``); without it these commands say so in one line.
This module sets Ray's environment (no usage statistics) before Ray is imported.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rlcomposer.cli.common import Commands, add_output_options, emit, say

ADDRESS_HELP = ("join an existing Ray cluster: ray://HOST:PORT (Ray Client), HOST:PORT (its head's GCS "
                "port, as `ray start --head --port` printed) or auto; default: start Ray on this machine "
                "for the sweep and stop it at the end")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _ray_environment(address: str | None) -> None:
    """Ray's settings, before Ray is imported: no usage statistics; a local Ray (or a cluster on
    this machine's loopback) keeps to 127.0.0.1 instead of this machine's network address."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_INIT", "1")  # Ray is started (or joined) by the sweep itself
    host = (address or "").removeprefix("ray://").rpartition(":")[0]
    if address is None or host in LOOPBACK_HOSTS:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's switch to the loopback address


def _finish(args: argparse.Namespace, outcome) -> None:
    summary = {"status": "interrupted" if outcome.interrupted else "failed" if outcome.errored else "done",
               "out": str(outcome.out), "trials": outcome.trials, "finished": outcome.finished,
               "errored": outcome.errored, "seconds": outcome.seconds}
    lines = [f"sweep {outcome.out}: {outcome.finished} of {outcome.trials} trials finished "
             f"in {outcome.seconds / 60:.1f} min",
             *[f"  FAILED {line}" for line in outcome.errored]]
    if outcome.interrupted or outcome.errored:
        lines.append(f"  finish it: rlcomposer sweep resume {outcome.out}")
    else:
        lines.append(f"  table and plots: rlcomposer sweep report {outcome.out}")
    emit(args, summary, "\n".join(lines))
    if outcome.interrupted:
        raise KeyboardInterrupt
    if outcome.errored:
        from rlcomposer.sweep.spec import SweepError

        raise SweepError(f"{len(outcome.errored)} of {outcome.trials} trials failed (first: {outcome.errored[0]}); "
                         f"`rlcomposer sweep resume {outcome.out}` runs them again")


def cmd_sweep_run(args: argparse.Namespace) -> None:
    _ray_environment(args.address)
    from rlcomposer.sweep.runner import SweepRunConfig, require_ray, run_sweep
    from rlcomposer.sweep.spec import load_sweep

    spec = load_sweep(args.sweep)
    require_ray()
    run = SweepRunConfig(out=Path(args.out), address=args.address, num_cpus=args.num_cpus)
    _finish(args, run_sweep(spec, run, say=lambda message: say(args, message)))


def cmd_sweep_resume(args: argparse.Namespace) -> None:
    _ray_environment(args.address)
    from rlcomposer.sweep.runner import SweepRunConfig, read_sweep_state, require_ray, resume_sweep

    read_sweep_state(args.out)  # a folder that is no sweep: one line, before Ray starts
    require_ray()
    run = SweepRunConfig(out=Path(args.out), address=args.address, num_cpus=args.num_cpus)
    _finish(args, resume_sweep(Path(args.out), run, say=lambda message: say(args, message)))


def cmd_sweep_report(args: argparse.Namespace) -> None:
    from rlcomposer.sweep.report import write_sweep_report

    report = write_sweep_report(Path(args.out))
    emit(args, {"out": str(args.out), "trials": report.trials, "groups": report.groups,
                "files": [str(p) for p in report.files]},
         report.markdown + "\n" + "\n".join(f"wrote {p}" for p in report.files))


def register(commands: Commands) -> None:
    """Add ``sweep run``, ``sweep resume`` and ``sweep report``."""
    sweep = commands.add_parser(
        "sweep", help="many experiment runs from one sweep file on Ray Tune (pip install 'rlcomposer[sweep]')")
    actions = sweep.add_subparsers(dest="sweep_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="run every trial of a sweep file (see experiments/sweeps/)",
        description="A sweep file names a base experiment config and a search space over its keys (grid "
                    "values and random choices). Each trial is one `experiment run` in OUT/trials/NAME/; "
                    "Ray Tune runs them, each with its CPU budget as torch's threads. Ctrl-C stops "
                    "cleanly; `sweep resume OUT` finishes the rest.")
    add_output_options(run, quiet_help="no per-trial progress lines")
    run.add_argument("sweep", help="the sweep YAML file")
    run.add_argument("--out", required=True, help="a new folder for the sweep, e.g. runs/NAME")
    run.add_argument("--address", default=None, metavar="ADDRESS", help=ADDRESS_HELP)
    run.add_argument("--num-cpus", dest="num_cpus", type=int, default=None,
                     help="CPUs a local Ray may use (default: all of them)")
    run.set_defaults(handler=cmd_sweep_run)

    resume = actions.add_parser("resume", help="finish the trials of a sweep that did not finish")
    add_output_options(resume, quiet_help="no per-trial progress lines")
    resume.add_argument("out", help="the sweep folder, e.g. runs/NAME")
    resume.add_argument("--address", default=None, metavar="ADDRESS", help=ADDRESS_HELP)
    resume.add_argument("--num-cpus", dest="num_cpus", type=int, default=None,
                        help="CPUs a local Ray may use (default: all of them)")
    resume.set_defaults(handler=cmd_sweep_resume)

    report = actions.add_parser(
        "report", help="one table of every trial and of the groups of the swept keys, with plots")
    add_output_options(report, quiet_help="(no effect)")
    report.add_argument("out", help="the sweep folder, e.g. runs/NAME")
    report.set_defaults(handler=cmd_sweep_report)
