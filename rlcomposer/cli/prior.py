"""``rlcomposer prior train`` and ``prior evaluate``: the melody prior against the n-gram baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rlcomposer.cli.common import (
    Commands,
    add_corpus_options,
    add_output_options,
    emit,
    load_corpus,
    non_negative_int,
    positive_int,
    say,
)


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
    corpus = load_corpus(args)
    say(args, f"training a prior on {corpus.num_tunes('train')} tunes "
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
        log=lambda message: say(args, message),
    )
    emit(args, {"out": str(out_dir), "tensorboard": str(tensorboard_dir), **metrics},
         format_prior_report(metrics, out_dir))


def format_prior_report(metrics: dict[str, Any], where: Path | str) -> str:
    """The test-split scores of a prior beside the n-gram baseline's, as printed by both commands."""
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
    corpus = load_corpus(args)
    test = corpus.sequences("test")
    say(args, f"scoring {directory.name} and the n-gram baseline on {len(test)} test tunes")
    score = score_prior(model, test)
    baseline = score_ngram_baseline(corpus.sequences("train"), corpus.sequences("validation"), test)
    metrics = {
        "test": {"nll_per_step": score.nll_per_step, "accuracy": score.accuracy,
                 "perplexity": score.perplexity, "num_steps": score.num_steps, "num_tunes": len(test)},
        "ngram_baseline": baseline,
        "perplexity_reduction_vs_ngram": 1 - score.perplexity / baseline["test_perplexity"],
    }
    emit(args, metrics, format_prior_report(metrics, args.model))


def register(commands: Commands) -> None:
    """Add ``prior train`` and ``prior evaluate``."""
    prior = commands.add_parser("prior", help="the melody prior")
    prior_commands = prior.add_subparsers(dest="prior_command", metavar="ACTION", required=True)
    train = prior_commands.add_parser(
        "train", help="train a prior on the corpus (the shipped one is the default everywhere)",
        description="Train a GRU prior by maximum likelihood on the training split, keep the best "
                    "validation epoch, report the test split beside an n-gram baseline.")
    add_output_options(train)
    add_corpus_options(train)
    train.add_argument("--config", default=None, help="YAML file of PriorTrainingConfig keys")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one config key (repeatable), e.g. --set hidden_size=128")
    train.add_argument("--seed", type=non_negative_int, default=None, help="random seed (config key seed)")
    train.add_argument("--max-epochs", type=positive_int, default=None, help="config key max_epochs")
    train.add_argument("--out", default="runs/prior", help="model directory to write (default runs/prior)")
    train.add_argument("--tensorboard", default=None, help="TensorBoard log folder (default OUT-tb)")
    train.set_defaults(handler=cmd_prior_train)

    evaluate = prior_commands.add_parser(
        "evaluate", help="test-split NLL and accuracy of a prior beside the n-gram baseline")
    add_output_options(evaluate)
    add_corpus_options(evaluate)
    evaluate.add_argument("--model", default="prior", help="prior directory or 'prior' (default)")
    evaluate.set_defaults(handler=cmd_prior_evaluate)
