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
    model, metrics = train_prior(
        config,
        corpus.sequences("train"),
        corpus.sequences("validation"),
        corpus.sequences("test"),
        out_dir=None,
        tensorboard_dir=tensorboard_dir,
        progress=not args.json,
        log=lambda message: say(args, message),
        conditions={split: corpus_conditions(corpus, split) for split in ("train", "validation", "test")},
    )
    metrics["test_duple_as_before"] = duple_as_before(model, corpus)
    from rlcomposer.checkpoints import save_model_dir

    save_model_dir(out_dir, "prior", model.config, model.state_dict(), config, metrics)
    emit(args, {"out": str(out_dir), "tensorboard": str(tensorboard_dir), **metrics},
         format_prior_report(metrics, out_dir))


def corpus_conditions(corpus, split: str, padded: bool = False) -> list:
    """Each tune's :class:`~rlcomposer.prior.model.MelodyCondition` (metre, mode, length, pick-up;
    ``padded``: the earlier encoding's, the pick-up's bar filled with silence, no pick-up)."""
    from rlcomposer.prior.model import MelodyCondition

    pickups = [0] * corpus.num_tunes(split) if padded else corpus.pickups(split)
    return [MelodyCondition(metre, mode, len(sequence), pickup) for metre, mode, sequence, pickup in
            zip(corpus.metres(split), corpus.modes(split), corpus.sequences(split, padded=padded), pickups,
                strict=True)]


def scoring_view(model, corpus, split: str) -> tuple[list, list, list[int] | None]:
    """What ``model`` is scored on: ``(sequences, conditions, skip)``. A prior that knows pick-ups
    reads the tunes from their first note; an earlier one reads them padded as it learnt them,
    the padding context only (``skip``), so both are scored on the same notes."""
    if model.config.pickups:
        return corpus.sequences(split), corpus_conditions(corpus, split), None
    return (corpus.sequences(split, padded=True), corpus_conditions(corpus, split, padded=True),
            corpus.paddings(split))


def duple_as_before(model, corpus) -> dict[str, Any]:
    """The prior's NLL on the test tunes the earlier 4/4-only corpus kept too (2/4, 4/4, 2/2
    without tuplets), for comparison with the earlier prior's figure."""
    from rlcomposer.corpus.corpus import SPLITS
    from rlcomposer.prior.training import score_prior

    ids = [i for i in range(len(corpus)) if corpus.split_ids[i] == SPLITS.index("test")]
    test, conditions, skip = scoring_view(model, corpus, "test")
    rows = [r for r, i in enumerate(ids) if corpus.index[i].get("metre") in ("2/4", "4/4", "2/2")
            and not corpus.index[i].get("quantised_notes")]
    score = score_prior(model, [test[r] for r in rows], 64, [conditions[r] for r in rows],
                        skip=[skip[r] for r in rows] if skip is not None else None)
    return {"tunes": len(rows), "nll_per_step": score.nll_per_step, "accuracy": score.accuracy}


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
    for family, row in metrics.get("test_by_family", {}).items():
        low, high = row["nll_95"]
        n_low, n_high = row["ngram_nll_95"]
        lines.append(
            f"  {family} ({row['tunes']} tunes): NLL/step {row['nll_per_step']:.4f} "
            f"[{low:.4f}, {high:.4f}], n-gram {row['ngram_nll_per_step']:.4f} [{n_low:.4f}, {n_high:.4f}], "
            f"perplexity {100 * row['perplexity_reduction_vs_ngram']:.1f}% lower"
            + (f"; NLL/note {row['nll_per_note']:.3f}, n-gram {row['ngram_nll_per_note']:.3f}"
               if "nll_per_note" in row else ""))
    before = metrics.get("test_duple_as_before")
    if before:
        lines.append(f"  duple tunes without tuplets ({before['tunes']} test tunes): "
                     f"NLL/step {before['nll_per_step']:.4f}")
    return "\n".join(lines)


def cmd_prior_evaluate(args: argparse.Namespace) -> None:
    from rlcomposer.prior.model import load_prior, prior_directory
    from rlcomposer.prior.training import score_ngram_baseline, score_prior

    directory = prior_directory(args.model)
    model = load_prior(directory)
    corpus = load_corpus(args)
    import numpy as np

    from rlcomposer.prior.training import family_report

    test = corpus.sequences("test")
    conditions = corpus_conditions(corpus, "test")
    view, view_conditions, skip = scoring_view(model, corpus, "test")
    say(args, f"scoring {directory.name} and the n-gram baseline on {len(test)} test tunes")
    per_tune: list[float] = []
    score = score_prior(model, view, 64, view_conditions if model.config.conditioned else None, per_tune,
                        skip=skip)
    train, validation = corpus.sequences("train"), corpus.sequences("validation")
    baseline = score_ngram_baseline(train, validation, test)
    metrics = {
        "test": {"nll_per_step": score.nll_per_step, "accuracy": score.accuracy,
                 "perplexity": score.perplexity, "num_steps": score.num_steps, "num_tunes": len(test)},
        "ngram_baseline": baseline,
        "perplexity_reduction_vs_ngram": 1 - score.perplexity / baseline["test_perplexity"],
        "test_by_family": family_report(per_tune, test, conditions, train, validation,
                                        np.random.default_rng(0)),
    }
    if model.config.conditioned:
        metrics["test_duple_as_before"] = duple_as_before(model, corpus)
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
