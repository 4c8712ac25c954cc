"""``rlcomposer tune``: PPO fine-tuning of the prior against a reward, held near the prior (KL-control)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlcomposer.cli.common import (
    CALLABLE_SEARCH_NOTE,
    Commands,
    add_db_option,
    add_melody_shape_options,
    add_output_options,
    check_bars,
    disk_errors,
    emit,
    non_negative_int,
    positive_int,
    resolve_existing_db,
    say,
)
from rlcomposer.rl import ALGORITHMS


def cmd_tune(args: argparse.Namespace) -> None:
    from rlcomposer.config import config_to_dict, load_config, parse_overrides
    from rlcomposer.preferences.reward_functions import resolve_reward
    from rlcomposer.rl.run_folder import check_run_target, replacing_run
    from rlcomposer.rl.tuning import TuneConfig, tune

    check_bars(args)
    check_run_target(args.out, args.overwrite, args.resume is not None)  # before anything is loaded or written
    overrides = parse_overrides(args.set)
    for key in ("reward", "prior", "seed", "total_timesteps", "kl_beta", "kl_target", "algorithm",
                "metre", "mode"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    if args.bars is not None:
        overrides["num_bars"] = args.bars
    config = load_config(TuneConfig, args.config, overrides)
    if config.algorithm == "dpo":
        _tune_dpo(args, config)
        return
    reward_fn = resolve_reward(config.reward, expected_prior=config.prior) if config.reward else None
    say(args, f"tuning into {args.out}; config: {json.dumps(config_to_dict(config))}")
    with replacing_run(args.out, args.overwrite), disk_errors(f"--out '{args.out}'"):
        metrics = tune(config, args.out, reward_fn, resume=args.resume,
                       progress=not args.json and not args.quiet, log=lambda message: say(args, message))
    final, first = metrics.get("final", {}), metrics.get("first", {})
    if config.algorithm == "bond":
        lines = [f"tuned policy written to {args.out} (best-of-{metrics['best_of']} distilled from "
                 f"{metrics['targets']} targets, {metrics['seconds']:.0f} s)"]
    else:
        lines = [f"tuned policy written to {args.out} ({metrics['timesteps']} steps, "
                 f"{metrics['env_steps_per_second']:.0f} env-steps/s)"]
    for key in sorted(k for k in final if k.startswith("reward_")):
        lines.append(f"  {key}: {first.get(key, float('nan')):.3f} -> {final[key]:.3f}")
    if "kl_per_melody" in final:
        lines.append(f"  KL(policy || prior) per melody: {final['kl_per_melody']:.3f} nats")
    if "style_overlap" in final:
        lines.append(f"  style overlap with the corpus: {first.get('style_overlap', float('nan')):.3f} -> "
                     f"{final['style_overlap']:.3f}; one pitch repeated: {final['one_pitch_repeated']:.1%} "
                     "of the melodies")
    if metrics.get("plots"):
        lines.append(f"  plots: {', '.join(metrics['plots'])}")
    if config.algorithm != "bond":
        lines.append(f"  TensorBoard: tensorboard --logdir {Path(args.out) / 'tb'}")
    emit(args, {"out": str(args.out), **metrics}, "\n".join(lines))


def _tune_dpo(args: argparse.Namespace, config) -> None:
    """DPO on the comparisons in the rating database (of ``--tag``, by ``--rater``), no reward model."""
    from rlcomposer.errors import RLComposerError
    from rlcomposer.feedback.store import check_tag, open_store
    from rlcomposer.preferences.reward_model import load_training_data
    from rlcomposer.rl.tuning import tune

    if args.resume is not None:
        raise RLComposerError("--resume is for PPO runs; a DPO run is short: run it again")
    if args.tag is not None:
        check_tag(args.tag)
    data = load_training_data(open_store(resolve_existing_db(args, with_ratings=True)), tag=args.tag, rater=args.rater)
    say(args, f"DPO on {len(data.comparisons)} comparisons into {args.out}")
    from rlcomposer.rl.run_folder import replacing_run

    with replacing_run(args.out, args.overwrite), disk_errors(f"--out '{args.out}'"):
        metrics = tune(config, args.out, comparisons=data.comparisons, log=lambda message: say(args, message))
    emit(args, {"out": str(args.out), **metrics},
         f"tuned policy written to {args.out} (DPO, {metrics['comparisons']} comparisons, best epoch "
         f"{metrics['best_epoch']}): held-out implicit-reward accuracy {metrics['held_out_accuracy']:.1%}, "
         f"KL(policy || prior) per melody {metrics['kl_per_melody']:.2f} nats")


def register(commands: Commands) -> None:
    """Add ``tune``."""
    tune = commands.add_parser(
        "tune", help="fine-tune the prior against a reward (PPO, KL-control) or on comparisons (DPO)",
        description="Fine-tune the prior with sequence-level PPO against a melody-level reward "
                    "(--reward module:function or a reward-model directory) and/or music-theory terms, "
                    "with a KL penalty to the prior (fixed β, or adapted to --kl-target); or with "
                    "--algorithm dpo directly on the comparisons in the rating database (--db, --tag, "
                    "--rater), with no reward model. Writes a policy directory that generate and "
                    "evaluate accept, TensorBoard logs, checkpoints for --resume and PNG plots.")
    add_output_options(tune)
    add_db_option(tune)
    tune.add_argument("--tag", default=None, help="DPO: train on the comparisons of this pool tag")
    tune.add_argument("--rater", default=None, help="DPO: train on this rater's comparisons only")
    tune.add_argument("--config", default=None,
                      help="YAML file of TuneConfig keys (see rlcomposer/rl/tuning.py)")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override one config key (repeatable), e.g. --set theory_motif=1")
    tune.add_argument("--reward", default=None, metavar="MODULE:FUNCTION", help="melody-level reward function, or a reward-model directory; " + CALLABLE_SEARCH_NOTE)
    tune.add_argument("--prior", default=None, help="prior to start from (default: the shipped prior)")
    tune.add_argument("--seed", type=non_negative_int, default=None, help="random seed")
    tune.add_argument("--total-timesteps", dest="total_timesteps", type=positive_int, default=None,
                      help="environment steps (tokens) to train for (default: total_melodies=16384 "
                           "melodies of the task's length)")
    tune.add_argument("--kl-beta", dest="kl_beta", type=float, default=None,
                      help="β, weight of KL(policy || prior); where the adaptive β starts (default "
                           "kl_target 3 nats), fixed with --set kl_target=null (0: no KL-control)")
    tune.add_argument("--kl-target", dest="kl_target", type=float, default=None, metavar="NATS",
                      help="adapt β to hold KL(policy || prior) at this many nats per melody (default 3)")
    tune.add_argument("--algorithm", choices=ALGORITHMS, default=None,
                      help="rloo (default: sequence-level PPO with leave-one-out baselines); sequence "
                           "(sequence-level PPO with a critic); vbon (PPO on the reward's log-quantile "
                           "under the prior: aims at best-of-N); rloo (leave-one-out baselines); "
                           "vbon-rloo (both); stock SB3 PPO; or dpo (on the comparisons)")
    add_melody_shape_options(tune, key=False, bars_default=None)
    tune.add_argument("--out", required=True, help="run folder to write the policy, logs and plots into")
    tune.add_argument("--overwrite", action="store_true",
                      help="replace the run already in OUT (without it, a folder that holds files is refused; "
                           "the old run is deleted once the new one has written something)")
    tune.add_argument("--resume", default=None, metavar="ZIP",
                      help="continue from a checkpoint zip in OUT/checkpoints (trusted files only: it unpickles)")
    tune.set_defaults(handler=cmd_tune)
