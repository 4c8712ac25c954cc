"""The ``rlcomposer`` command line.

The only module (with the app) that reads ``sys.argv`` and the environment.
Bad input ends with one line ``rlcomposer: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rlcomposer.cli.common import ENV_CACHE_DIR, default_cache_dir
from rlcomposer.cli.common import corpus_config as _corpus_config
from rlcomposer.cli.common import emit as _emit
from rlcomposer.cli.common import load_corpus as _load_corpus
from rlcomposer.cli.common import non_negative_int as _non_negative_int
from rlcomposer.cli.common import positive_int as _positive_int
from rlcomposer.cli.common import say as _say
from rlcomposer.errors import RLComposerError


# -------------------------------------------------------------------- commands
def cmd_corpus_build(args: argparse.Namespace) -> None:
    from rlcomposer.corpus.build import build_corpus

    config = _corpus_config(args)
    started = time.monotonic()
    corpus = build_corpus(config, Path(args.cache_dir), force=args.force,
                          progress=not args.json and not args.quiet)
    seconds = time.monotonic() - started
    stats = corpus.stats
    splits = {split: {"tunes": corpus.num_tunes(split), "steps": corpus.num_steps(split)}
              for split in ("train", "validation", "test")}
    result = {
        "cache_dir": str(args.cache_dir),
        "parsed": stats.parsed,
        "kept": stats.kept,
        "skipped_by_reason": stats.skipped_by_reason,
        "from_cache": stats.from_cache,
        "build_seconds": stats.build_seconds,
        "seconds": seconds,
        "splits": splits,
    }
    lines = [
        f"corpus {'read from cache' if stats.from_cache else 'built'} in {seconds:.1f} s "
        f"({args.cache_dir})",
        f"parsed {stats.parsed} tunes, kept {stats.kept}, skipped {stats.parsed - stats.kept}",
    ]
    for reason, count in sorted(stats.skipped_by_reason.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped ({reason}): {count}")
    for split, info in splits.items():
        lines.append(f"  {split}: {info['tunes']} tunes, {info['steps']} steps")
    _emit(args, result, "\n".join(lines))


def cmd_prior_train(args: argparse.Namespace) -> None:
    from rlcomposer.config import config_to_dict, load_config, parse_overrides
    from rlcomposer.prior.training import PriorTrainingConfig, train_prior

    overrides = parse_overrides(args.set)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.max_epochs is not None:
        overrides["max_epochs"] = args.max_epochs
    config = load_config(PriorTrainingConfig, args.config, overrides)
    out_dir = Path(args.out)
    corpus = _load_corpus(args)
    _say(args, f"training a prior on {corpus.num_tunes('train')} tunes "
               f"({corpus.num_steps('train')} steps); config: {json.dumps(config_to_dict(config))}")
    tensorboard_dir = Path(args.tensorboard) if args.tensorboard else out_dir.parent / (out_dir.name + "-tb")
    _, metrics = train_prior(
        config,
        corpus.sequences("train"),
        corpus.sequences("validation"),
        corpus.sequences("test"),
        out_dir=out_dir,
        tensorboard_dir=tensorboard_dir,
        progress=not args.json,
        log=lambda message: _say(args, message),
    )
    _emit(args, {"out": str(out_dir), "tensorboard": str(tensorboard_dir), **metrics},
          _format_prior_report(metrics, out_dir))


def _format_prior_report(metrics: dict[str, Any], where: Path | str) -> str:
    lines = [f"prior: {where}"]
    test = metrics.get("test")
    baseline = metrics.get("ngram_baseline")
    if test:
        lines.append(
            f"  test split ({test['num_tunes']} tunes, {test['num_steps']} steps): "
            f"NLL/step {test['nll_per_step']:.4f}, perplexity {test['perplexity']:.3f}, "
            f"next-token accuracy {test['accuracy']:.3f}"
        )
    if baseline:
        lines.append(
            f"  n-gram baseline (order {baseline['order']}, discount {baseline['discount']}): "
            f"NLL/step {baseline['test_nll_per_step']:.4f}, perplexity {baseline['test_perplexity']:.3f}"
        )
    if "perplexity_reduction_vs_ngram" in metrics:
        lines.append(f"  perplexity reduction vs n-gram: {100 * metrics['perplexity_reduction_vs_ngram']:.1f}%")
    return "\n".join(lines)


def cmd_prior_evaluate(args: argparse.Namespace) -> None:
    from rlcomposer.prior.model import load_prior, prior_directory
    from rlcomposer.prior.training import score_ngram_baseline, score_prior

    directory = prior_directory(args.model)
    model = load_prior(directory)
    corpus = _load_corpus(args)
    test = corpus.sequences("test")
    _say(args, f"scoring {directory.name} and the n-gram baseline on {len(test)} test tunes")
    score = score_prior(model, test)
    baseline = score_ngram_baseline(corpus.sequences("train"), corpus.sequences("validation"), test)
    metrics = {
        "test": {"nll_per_step": score.nll_per_step, "accuracy": score.accuracy,
                 "perplexity": score.perplexity, "num_steps": score.num_steps, "num_tunes": len(test)},
        "ngram_baseline": baseline,
        "perplexity_reduction_vs_ngram": 1 - score.perplexity / baseline["test_perplexity"],
    }
    _emit(args, metrics, _format_prior_report(metrics, args.model))


def _generation_config(args: argparse.Namespace):
    from rlcomposer.prior.generation import GenerationConfig

    return GenerationConfig(
        model=args.model, num_melodies=args.n, seed=args.seed, num_bars=args.bars,
        temperature=args.temperature, top_k=args.top_k,
        formats=tuple(f.strip() for f in args.format.split(",") if f.strip()),
        tempo_bpm=args.tempo,
    )


def cmd_generate(args: argparse.Namespace) -> None:
    from rlcomposer.prior.generation import export_melodies, sample_melodies
    from rlcomposer.prior.registry import resolve_model

    config = _generation_config(args)
    model = resolve_model(config.model, lambda: _load_corpus(args).sequences("test"))
    if args.best_of is not None:
        from rlcomposer.preferences.reward_functions import resolve_reward
        from rlcomposer.rl.best_of_n import BestOfNModel

        if not args.reward:
            raise RLComposerError("--best-of needs --reward (module:function) to choose the best")
        model = BestOfNModel(model, resolve_reward(args.reward), args.best_of, args.reward)
    elif args.reward:
        raise RLComposerError("--reward is used with --best-of N")
    melodies = sample_melodies(model, config)
    files = export_melodies(melodies, args.out, config.formats, config.tempo_bpm,
                            progress=not args.json and not args.quiet)
    result = {"out": str(args.out), "model": config.model, "seed": config.seed,
              "melodies": len(melodies), "files": [str(f) for f in files]}
    _emit(args, result, f"wrote {len(melodies)} melodies ({len(files)} files) to {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import numpy as np

    from rlcomposer.experiments.evaluation import evaluate_models, format_evaluation
    from rlcomposer.prior.registry import resolve_model

    if args.n < 1:
        raise RLComposerError(f"--n must be at least 1, got {args.n}")
    specs = list(args.model or ["prior"])
    if args.baseline:
        specs.append(args.baseline)
    corpus_sequences = None

    def corpus_loader():
        nonlocal corpus_sequences
        if corpus_sequences is None:
            corpus_sequences = _load_corpus(args).sequences("test")
        return corpus_sequences

    models = [resolve_model(spec, corpus_loader) for spec in specs]
    for model, spec in zip(models, specs, strict=True):
        model.name = spec
    reward_fn = None
    if args.reward:
        from rlcomposer.preferences.reward_functions import resolve_reward

        reward_fn = resolve_reward(args.reward)
    if args.best_of is not None:
        from rlcomposer.rl.best_of_n import BestOfNModel

        if reward_fn is None:
            raise RLComposerError("--best-of needs --reward (module:function) to choose the best")
        models.append(BestOfNModel(models[0], reward_fn, args.best_of, args.reward))
    _say(args, f"sampling {args.n} melodies of {args.bars} bars from "
               f"{', '.join(m.name for m in models)}")
    listener_fn = None
    if args.listener:
        from rlcomposer.preferences.listeners import load_listener

        listener_fn, _ = load_listener(args.listener)
    reference = len(specs) - 1 if args.baseline else 0  # win-rates are against --baseline, else the first --model
    results = evaluate_models(models, args.n, args.bars * 16, np.random.default_rng(args.seed),
                              reward_fn=reward_fn, listener_fn=listener_fn, reference_index=reference)
    _emit(args, {"num_melodies": args.n, "num_steps": args.bars * 16, "seed": args.seed,
                 "models": [r.as_dict() for r in results]}, format_evaluation(results))


def cmd_tune(args: argparse.Namespace) -> None:
    from rlcomposer.config import config_to_dict, load_config, parse_overrides
    from rlcomposer.preferences.reward_functions import resolve_reward
    from rlcomposer.rl.tuning import TuneConfig, tune

    overrides = parse_overrides(args.set)
    for key in ("reward", "prior", "seed", "total_timesteps", "kl_beta", "algorithm"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    config = load_config(TuneConfig, args.config, overrides)
    reward_fn = resolve_reward(config.reward, expected_prior=config.prior) if config.reward else None
    _say(args, f"tuning into {args.out}; config: {json.dumps(config_to_dict(config))}")
    metrics = tune(config, args.out, reward_fn, resume=args.resume, progress=not args.json and not args.quiet,
                   log=lambda message: _say(args, message))
    final, first = metrics.get("final", {}), metrics.get("first", {})
    lines = [f"tuned policy written to {args.out} ({metrics['timesteps']} steps, "
             f"{metrics['env_steps_per_second']:.0f} env-steps/s)"]
    for key in sorted(k for k in final if k.startswith("reward_")):
        lines.append(f"  {key}: {first.get(key, float('nan')):.3f} -> {final[key]:.3f}")
    if "kl_per_melody" in final:
        lines.append(f"  KL(policy || prior) per melody: {final['kl_per_melody']:.3f} nats")
    lines.append(f"  plots: {', '.join(metrics['plots'])}")
    lines.append(f"  TensorBoard: tensorboard --logdir {Path(args.out) / 'tb'}")
    _emit(args, {"out": str(args.out), **metrics}, "\n".join(lines))


def cmd_experiment(args: argparse.Namespace) -> None:
    from rlcomposer.config import parse_overrides
    from rlcomposer.experiments.loop import (
        Experiment,
        ExperimentWaiting,
        load_experiment_config,
        read_run_state,
        resume_config,
    )

    if args.experiment_command == "run":
        config = load_experiment_config(args.config, parse_overrides(args.set))
        run_dir = Path(args.runs_dir) / config.name
        db_url = args.db
    else:
        run_dir = Path(args.run_dir)
        config = resume_config(run_dir)
        db_url = args.db or read_run_state(run_dir).get("db_url")
    if db_url:
        from rlcomposer.feedback.database import normalise_url

        db_url = normalise_url(db_url)
    started = time.monotonic()
    experiment = Experiment(config, run_dir, db_url, log=lambda message: _say(args, message),
                            progress=not args.json and not args.quiet)
    try:
        results = experiment.run()
    except ExperimentWaiting as waiting:
        _emit(args, {"status": "waiting", "run_dir": str(run_dir), "message": str(waiting)}, str(waiting))
        return
    report = experiment.write_report()
    last = results[-1]
    summary = {"status": "done", "run_dir": str(run_dir), "report": str(report),
               "seconds": time.monotonic() - started, "win_rate": last.win_rate,
               "best_of_n_win_rate": last.best_of_n_win_rate, "kl_tuned": last.kl_tuned,
               "rounds": len(results)}
    text = [f"experiment {config.name}: {len(results)} round(s) in {summary['seconds'] / 60:.1f} min",
            f"  listener's win-rate of tuned over prior: "
            f"{'n/a' if last.win_rate is None else f'{100 * last.win_rate:.1f}%'} "
            f"(KL {last.kl_tuned:.2f} nats); best-of-{last.best_of_n}: "
            f"{'n/a' if last.best_of_n_win_rate is None else f'{100 * last.best_of_n_win_rate:.1f}%'}",
            f"  report: {report}",
            f"  tuned melodies: {run_dir / f'round-{last.round}' / 'melodies'}",
            f"  rate them yourself: rlcomposer app --db {experiment.db_url}"]
    _emit(args, summary, "\n".join(text))


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlcomposer",
        description="Compose melodies and learn from listeners' ratings which ones they like.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(sub: argparse.ArgumentParser, corpus: bool = False) -> None:
        sub.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        if corpus:
            sub.add_argument("--cache-dir", default=None,
                             help=f"corpus cache folder (default: ${ENV_CACHE_DIR} or the user cache folder)")
            sub.add_argument("--max-tunes", type=_positive_int, default=None,
                             help="parse at most this many tunes per collection (for quick trials)")

    corpus = commands.add_parser("corpus", help="the bundled folk corpus")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    build = corpus_commands.add_parser(
        "build", help="parse the folk collections bundled in music21 into the cache",
        description="Parse essenFolksong, oneills1850, airdsAirs and ryansMammoth (shipped with "
                    "music21) on both cores, keep 2/4, 4/4 and 2/2 tunes, transpose to C major / "
                    "A minor, split by tune and cache compact arrays. A second build reads the cache.")
    common(build, corpus=True)
    build.add_argument("--force", action="store_true", help="rebuild even if a cache exists")
    build.add_argument("--workers", type=_positive_int, default=None, help="parser processes (default 2)")
    build.set_defaults(handler=cmd_corpus_build)

    prior = commands.add_parser("prior", help="the melody prior")
    prior_commands = prior.add_subparsers(dest="prior_command", metavar="ACTION", required=True)
    train = prior_commands.add_parser(
        "train", help="train a prior on the corpus (the shipped one is the default everywhere)",
        description="Train a GRU prior by maximum likelihood on the training split, keep the best "
                    "validation epoch, report the test split beside an n-gram baseline.")
    common(train, corpus=True)
    train.add_argument("--config", default=None, help="YAML file of PriorTrainingConfig keys")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one config key (repeatable), e.g. --set hidden_size=128")
    train.add_argument("--seed", type=_non_negative_int, default=None, help="random seed (config key seed)")
    train.add_argument("--max-epochs", type=_positive_int, default=None, help="config key max_epochs")
    train.add_argument("--out", default="runs/prior", help="model directory to write (default runs/prior)")
    train.add_argument("--tensorboard", default=None, help="TensorBoard log folder (default OUT-tb)")
    train.set_defaults(handler=cmd_prior_train)
    prior_eval = prior_commands.add_parser(
        "evaluate", help="test-split NLL and accuracy of a prior beside the n-gram baseline")
    common(prior_eval, corpus=True)
    prior_eval.add_argument("--model", default="prior", help="prior directory or 'prior' (default)")
    prior_eval.set_defaults(handler=cmd_prior_evaluate)

    generate = commands.add_parser(
        "generate", help="sample melodies and write MIDI / MusicXML / WAV / JSON files",
        description="Sample melodies from a model and write one file per melody per format. "
                    "The same seed gives byte-identical JSON.")
    common(generate, corpus=True)
    generate.add_argument("--model", default="prior",
                          help="model directory, or prior (default) / corpus / random")
    generate.add_argument("--n", type=int, default=8, help="number of melodies (default 8)")
    generate.add_argument("--seed", type=int, default=0, help="random seed, 0 or more (default 0)")
    generate.add_argument("--out", required=True, help="folder to write the files into")
    generate.add_argument("--format", default="midi,musicxml,wav,json",
                          help="comma-separated formats: midi, musicxml, wav, json (default all)")
    generate.add_argument("--bars", type=int, default=4, help="melody length in 16-step bars (default 4)")
    generate.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    generate.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    generate.add_argument("--tempo", type=float, default=120.0, help="quarter notes per minute (default 120)")
    generate.add_argument("--best-of", type=int, default=None, metavar="N",
                          help="sample N melodies per output and keep the one --reward scores highest")
    generate.add_argument("--reward", default=None, metavar="MODULE:FUNCTION",
                          help="reward function for --best-of (any callable Melody -> float)")
    generate.set_defaults(handler=cmd_generate)

    evaluate = commands.add_parser(
        "evaluate", help="music metrics of models side by side (corpus and random are models too)",
        description="Sample melodies from each model and print the Sequence Tutor music metrics "
                    "and the shipped prior's log-likelihood per step, side by side.")
    common(evaluate, corpus=True)
    evaluate.add_argument("--model", action="append",
                          help="model directory or prior / corpus / random (repeatable; default prior)")
    evaluate.add_argument("--baseline", default=None, help="a model to compare against")
    evaluate.add_argument("--n", type=int, default=1000, help="melodies per model (default 1000)")
    evaluate.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    evaluate.add_argument("--bars", type=_positive_int, default=4, help="melody length in bars (default 4)")
    evaluate.add_argument("--reward", default=None, metavar="MODULE:FUNCTION",
                          help="also report the mean of this reward function")
    evaluate.add_argument("--best-of", type=_positive_int, default=None, metavar="N",
                          help="add a column: best-of-N sampling from the first --model under --reward")
    evaluate.add_argument("--listener", default=None, metavar="SPEC",
                          help="a listener (lyrical, rhythmic, adventurous or module:function): its mean "
                               "score and each model's win-rate against --baseline (else the first "
                               "--model), pair by pair, noiselessly")
    evaluate.set_defaults(handler=cmd_evaluate)

    tune = commands.add_parser(
        "tune", help="PPO fine-tuning of the prior against a reward, held near the prior (KL-control)",
        description="Fine-tune the prior with sequence-level PPO against a melody-level reward "
                    "(--reward module:function) and/or music-theory terms, with a KL penalty to the "
                    "prior. Writes a policy directory that generate and evaluate accept, TensorBoard "
                    "logs, checkpoints for --resume and PNG plots.")
    common(tune)
    tune.add_argument("--config", default=None, help="YAML file of TuneConfig keys (see rlcomposer/tuning.py)")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override one config key (repeatable), e.g. --set theory_motif=1")
    tune.add_argument("--reward", default=None, metavar="MODULE:FUNCTION", help="melody-level reward function")
    tune.add_argument("--prior", default=None, help="prior to start from (default: the shipped prior)")
    tune.add_argument("--seed", type=_non_negative_int, default=None, help="random seed")
    tune.add_argument("--total-timesteps", dest="total_timesteps", type=_positive_int, default=None,
                      help="environment steps (tokens) to train for")
    tune.add_argument("--kl-beta", dest="kl_beta", type=float, default=None,
                      help="β, weight of log p_prior per step (0: no KL-control)")
    tune.add_argument("--algorithm", choices=("sequence", "stock"), default=None,
                      help="sequence-level PPO (default) or stock SB3 PPO")
    tune.add_argument("--out", required=True, help="run folder to write the policy, logs and plots into")
    tune.add_argument("--resume", default=None, metavar="ZIP",
                      help="continue from a checkpoint zip in OUT/checkpoints (trusted files only: it unpickles)")
    tune.set_defaults(handler=cmd_tune)

    experiment = commands.add_parser(
        "experiment", help="the whole loop in rounds: rate -> reward model -> tune -> evaluate, with a report")
    experiment_commands = experiment.add_subparsers(dest="experiment_command", metavar="ACTION", required=True)
    run = experiment_commands.add_parser(
        "run", help="run an experiment from a YAML config (see experiments/configs/)",
        description="Rounds of: sample a pool from the current policy, collect comparisons (a simulated "
                    "listener, or people in the app), train the reward model, tune with PPO from the "
                    "prior, evaluate. Writes runs/NAME/ with report.md, plots, checkpoints and melodies.")
    common(run)
    run.add_argument("config", help="experiment YAML (ExperimentConfig keys, see rlcomposer/experiment.py)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key")
    run.add_argument("--runs-dir", default="runs", help="where run folders go (default runs/)")
    run.add_argument("--db", default=None,
                     help="database URL (default: runs/NAME/feedback.sqlite, the run's own SQLite file)")
    run.set_defaults(handler=cmd_experiment)
    resume = experiment_commands.add_parser(
        "resume", help="continue a run folder (e.g. after people have rated in the app)")
    common(resume)
    resume.add_argument("run_dir", help="the run folder, e.g. runs/quickstart")
    resume.add_argument("--db", default=None, help="database URL (default: the one the run used)")
    resume.set_defaults(handler=cmd_experiment)

    from rlcomposer.cli import feedback as cli_feedback

    cli_feedback.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "cache_dir") and args.cache_dir is None:
        args.cache_dir = default_cache_dir()
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # module:function callables may live in the working directory
    try:
        args.handler(args)
    except RLComposerError as error:
        print(f"rlcomposer: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlcomposer: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
