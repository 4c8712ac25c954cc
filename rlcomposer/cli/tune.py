"""``rlcomposer tune``: PPO fine-tuning of the prior against a reward, held near the prior (KL-control)."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from rlcomposer.cli.common import (
    Commands,
    add_output_options,
    emit,
    non_negative_int,
    positive_int,
    say,
)

TUNING_MODULE = "rlcomposer.rl.tuning"


def tuning_algorithms() -> tuple[str, ...]:
    """``ALGORITHMS`` of :mod:`rlcomposer.rl.tuning`, the one list of ``--algorithm`` choices.

    argparse needs the choices when the parser is built, and importing the tuning module
    takes seconds (torch, Stable-Baselines3), so while that module is not imported yet the
    tuple is read from its source; if the assignment there is not a plain literal, the
    module is imported after all.
    """
    module = sys.modules.get(TUNING_MODULE)
    if module is None:
        literal = _literal_from_source(TUNING_MODULE, "ALGORITHMS")
        if literal is not None:
            return literal
        module = importlib.import_module(TUNING_MODULE)
    return tuple(module.ALGORITHMS)


def _literal_from_source(module_name: str, name: str) -> tuple[str, ...] | None:
    """The last top-level ``name = (...)`` of a module's source, if it is a literal tuple of strings."""
    try:
        spec = importlib.util.find_spec(module_name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    value = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            value = node.value
    if value is None:
        return None
    try:
        literal = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(literal, tuple | list) and all(isinstance(item, str) for item in literal):
        return tuple(literal)
    return None


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
    say(args, f"tuning into {args.out}; config: {json.dumps(config_to_dict(config))}")
    metrics = tune(config, args.out, reward_fn, resume=args.resume, progress=not args.json and not args.quiet,
                   log=lambda message: say(args, message))
    final, first = metrics.get("final", {}), metrics.get("first", {})
    lines = [f"tuned policy written to {args.out} ({metrics['timesteps']} steps, "
             f"{metrics['env_steps_per_second']:.0f} env-steps/s)"]
    for key in sorted(k for k in final if k.startswith("reward_")):
        lines.append(f"  {key}: {first.get(key, float('nan')):.3f} -> {final[key]:.3f}")
    if "kl_per_melody" in final:
        lines.append(f"  KL(policy || prior) per melody: {final['kl_per_melody']:.3f} nats")
    lines.append(f"  plots: {', '.join(metrics['plots'])}")
    lines.append(f"  TensorBoard: tensorboard --logdir {Path(args.out) / 'tb'}")
    emit(args, {"out": str(args.out), **metrics}, "\n".join(lines))


def register(commands: Commands) -> None:
    """Add ``tune``."""
    tune = commands.add_parser(
        "tune", help="PPO fine-tuning of the prior against a reward, held near the prior (KL-control)",
        description="Fine-tune the prior with sequence-level PPO against a melody-level reward "
                    "(--reward module:function) and/or music-theory terms, with a KL penalty to the "
                    "prior. Writes a policy directory that generate and evaluate accept, TensorBoard "
                    "logs, checkpoints for --resume and PNG plots.")
    add_output_options(tune)
    tune.add_argument("--config", default=None, help="YAML file of TuneConfig keys (see rlcomposer/tuning.py)")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override one config key (repeatable), e.g. --set theory_motif=1")
    tune.add_argument("--reward", default=None, metavar="MODULE:FUNCTION", help="melody-level reward function")
    tune.add_argument("--prior", default=None, help="prior to start from (default: the shipped prior)")
    tune.add_argument("--seed", type=non_negative_int, default=None, help="random seed")
    tune.add_argument("--total-timesteps", dest="total_timesteps", type=positive_int, default=None,
                      help="environment steps (tokens) to train for")
    tune.add_argument("--kl-beta", dest="kl_beta", type=float, default=None,
                      help="β, weight of log p_prior per step (0: no KL-control)")
    tune.add_argument("--algorithm", choices=tuning_algorithms(), default=None,
                      help="sequence-level PPO (default) or stock SB3 PPO")
    tune.add_argument("--out", required=True, help="run folder to write the policy, logs and plots into")
    tune.add_argument("--resume", default=None, metavar="ZIP",
                      help="continue from a checkpoint zip in OUT/checkpoints (trusted files only: it unpickles)")
    tune.set_defaults(handler=cmd_tune)
