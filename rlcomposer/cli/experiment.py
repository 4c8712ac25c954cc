"""``rlcomposer experiment run`` and ``experiment resume``: the whole loop in rounds, with a report.

Their ``--db`` is not :func:`~rlcomposer.cli.common.add_db_option`'s: by default a run
keeps its ratings in its own SQLite file (``run``), or in the database it used (``resume``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rlcomposer.cli.common import (
    Commands,
    add_melody_shape_options,
    add_output_options,
    check_bars,
    emit,
    say,
)


def cmd_experiment(args: argparse.Namespace) -> None:
    from rlcomposer.config import parse_overrides
    from rlcomposer.experiments.loop import (
        Experiment,
        ExperimentWaiting,
        load_experiment_config,
        read_run_state,
        resume_config,
    )
    from rlcomposer.experiments.run_folder import check_experiment_target, removed_if_refused
    from rlcomposer.rl.run_folder import replacing_run

    if args.experiment_command == "run":
        check_bars(args)
        overrides = parse_overrides(args.set)
        if args.key is not None:
            overrides["key"] = args.key
        config = load_experiment_config(args.config, overrides)
        shape = {name: value for name, value in (("metre", args.metre), ("mode", args.mode),
                                                 ("num_bars", args.bars)) if value is not None}
        if shape:
            from dataclasses import replace

            config = replace(config, tune={**config.tune, **shape})
        run_dir = Path(args.runs_dir) / config.name
        db_url = args.db
        check_experiment_target(run_dir, config, args.overwrite)  # before anything is written
    else:
        run_dir = Path(args.run_dir)
        config = resume_config(run_dir)
        db_url = args.db or read_run_state(run_dir).get("db_url")
    if db_url:
        from rlcomposer.feedback.database import normalise_url

        db_url = normalise_url(db_url)
    started = time.monotonic()
    with replacing_run(run_dir, getattr(args, "overwrite", False)), removed_if_refused(run_dir):
        experiment = Experiment(config, run_dir, db_url, log=lambda message: say(args, message),
                                progress=not args.json and not args.quiet)
        try:
            results = experiment.run()
        except ExperimentWaiting as waiting:
            emit(args, {"status": "waiting", "run_dir": str(run_dir), "message": str(waiting)}, str(waiting))
            return
        report = experiment.write_report()
    last = results[-1]
    summary = {"status": "done", "run_dir": str(run_dir), "report": str(report),
               "seconds": time.monotonic() - started, "win_rate": last.win_rate,
               "best_of_n_win_rate": last.best_of_n_win_rate, "kl_tuned": last.kl_tuned,
               "rounds": len(results), "collapse_warnings": last.collapse_warnings,
               "style_overlap": last.musicality.get("tuned", {}).get("style_overlap"), "raters": last.raters}
    text = [f"experiment {config.name}: {len(results)} round(s) in {summary['seconds'] / 60:.1f} min",
            f"  listener's win-rate of tuned over prior: "
            f"{'n/a' if last.win_rate is None else f'{100 * last.win_rate:.1f}%'} "
            f"(KL {last.kl_tuned:.2f} nats); best-of-{last.best_of_n}: "
            f"{'n/a' if last.best_of_n_win_rate is None else f'{100 * last.best_of_n_win_rate:.1f}%'}",
            *[f"  WARNING: {warning} -- not a win" for warning in last.collapse_warnings],
            *[f"  made for {name}: {_pct(row.get('vs_prior'))} vs the prior, {_pct(row.get('vs_population'))} vs "
              f"the population's; {run_dir / f'round-{last.round}' / row['folder'] / 'melodies'}"
              for name, row in (last.raters or {}).items()],
            f"  report: {report}",
            f"  tuned melodies: {run_dir / f'round-{last.round}' / 'melodies'}",
            f"  rate them yourself: rlcomposer app --db {experiment.db_url}"]
    emit(args, summary, "\n".join(text))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def register(commands: Commands) -> None:
    """Add ``experiment run`` and ``experiment resume``."""
    experiment = commands.add_parser(
        "experiment", help="the whole loop in rounds: rate -> reward model -> tune -> evaluate, with a report")
    experiment_commands = experiment.add_subparsers(dest="experiment_command", metavar="ACTION", required=True)
    run = experiment_commands.add_parser(
        "run", help="run an experiment from a YAML config (see experiments/configs/)",
        description="Rounds of: sample a pool from the current policy, collect comparisons (a simulated "
                    "listener, or people in the app), train the reward model, tune with PPO from the "
                    "prior, evaluate. Writes runs/NAME/ with report.md, plots, checkpoints and melodies.")
    add_output_options(run)
    run.add_argument("config", help="experiment YAML (ExperimentConfig keys, see rlcomposer/experiments/loop.py)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key")
    run.add_argument("--runs-dir", default="runs", help="where run folders go (default runs/)")
    add_melody_shape_options(run, bars_default=None)
    run.add_argument("--db", default=None,
                     help="database URL (default: runs/NAME/feedback.sqlite, the run's own SQLite file)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in runs/NAME (without it, a run there with other settings "
                          "is refused; the same settings continue it)")
    run.set_defaults(handler=cmd_experiment)

    resume = experiment_commands.add_parser(
        "resume", help="continue a run folder (e.g. after people have rated in the app)")
    add_output_options(resume)
    resume.add_argument("run_dir", help="the run folder, e.g. runs/quickstart")
    resume.add_argument("--db", default=None, help="database URL (default: the one the run used)")
    resume.set_defaults(handler=cmd_experiment)
