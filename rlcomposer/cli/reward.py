"""``rlcomposer ratings simulate`` and ``reward train``: simulated listeners, and the reward model from ratings.

:func:`register` adds ``reward train``, and ``simulate`` to the ``ratings`` group that
:func:`rlcomposer.cli.feedback.register` creates (``cli/main.py`` hands it over, so the
two modules do not import each other).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rlcomposer.cli.common import (
    CALLABLE_SEARCH_NOTE,
    Commands,
    add_db_command_options,
    check_options,
    emit,
    non_negative_int,
    resolve_existing_db,
    say,
)
from rlcomposer.errors import RLComposerError


# -------------------------------------------------------------- simulate
def cmd_ratings_simulate(args: argparse.Namespace) -> None:
    import numpy as np

    from rlcomposer.feedback.database import display_url
    from rlcomposer.feedback.selection import ActiveSelection
    from rlcomposer.feedback.simulated_raters import simulate_ratings
    from rlcomposer.feedback.store import check_tag, open_store
    from rlcomposer.preferences.listeners import (
        ListenerNoise,
        SimulatedListener,
        load_listener,
    )
    from rlcomposer.validation import MAX_COUNT, SEED, between

    check_options(args, {"--pairs": between(0, MAX_COUNT, whole=True), "--stars": between(0, MAX_COUNT, whole=True),
                         "--candidates": between(1, 1_000_000, whole=True), "--seed": SEED})
    if args.pairs == 0 and args.stars == 0:
        raise RLComposerError("nothing to do: give --pairs N and/or --stars N")
    if args.tag is not None:
        check_tag(args.tag)
    noise = ListenerNoise(temperature=args.temperature, mistake_rate=args.mistake_rate,
                          tie_band=args.tie_band, star_noise=args.star_noise)
    function, name = load_listener(args.listener)  # a bad listener fails before the database is touched
    if args.strategy == "active" and not args.reward:
        raise RLComposerError("--strategy active needs --reward RM (a reward-model directory)")
    if args.strategy == "random" and args.reward:
        raise RLComposerError("--reward is used with --strategy active")
    reward = None
    if args.reward:
        from rlcomposer.preferences.personal_reward import (
            is_personal_reward_model,
            load_personal_reward_model,
        )
        from rlcomposer.preferences.reward_model import load_reward_model

        # a personal model: the listener's pairs follow its own uncertainty (the population's for a newcomer)
        reward = (load_personal_reward_model(args.reward) if is_personal_reward_model(args.reward)
                  else load_reward_model(args.reward))
    url = resolve_existing_db(args, with_ratings=True)  # the pool to rate is there; a mistyped path is no new database
    store = open_store(url)
    rng = np.random.default_rng(args.seed)
    listener = SimulatedListener(function, name, noise, rng=np.random.default_rng(rng.integers(2**63)))
    strategy = None
    if reward is not None:
        strategy = ActiveSelection(reward, candidate_pairs=args.candidates,
                                   rng=np.random.default_rng(rng.integers(2**63)),
                                   tags=(args.tag,) if args.tag else ())
    progress = None if args.quiet else (lambda message: say(args, message))
    counts: dict[str, Any] = simulate_ratings(store, listener, pairs=args.pairs, stars=args.stars, tag=args.tag,
                                              strategy=strategy, rng=rng, reference_tag=args.reference_tag,
                                              progress=progress)
    counts.update(db=display_url(url), listener=args.listener, strategy=args.strategy, seed=args.seed,
                  noise={"temperature": noise.temperature, "mistake_rate": noise.mistake_rate,
                         "tie_band": noise.tie_band, "star_noise": noise.star_noise})
    text = (f"{counts['rater']}: {counts['comparisons']} comparisons (a {counts['a']}, b {counts['b']}, "
            f"tie {counts['tie']}) and {counts['stars']} star ratings in {display_url(url)}"
            + (" (the rater has judged every item)" if counts["exhausted"] else ""))
    emit(args, counts, text)


# ----------------------------------------------------------------- train
def cmd_reward_train(args: argparse.Namespace) -> None:
    from rlcomposer.config import load_config, parse_overrides
    from rlcomposer.feedback.database import display_url
    from rlcomposer.feedback.store import check_tag, open_store
    from rlcomposer.preferences.reward_model import (
        RewardModelConfig,
        load_training_data,
        save_reward_model,
        train_reward_model,
    )

    config = load_config(RewardModelConfig, args.config, parse_overrides(args.set))
    if args.tag is not None:
        check_tag(args.tag)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RLComposerError(f"--out '{out}' exists and is not a directory")
    from rlcomposer.prior.model import load_prior

    if args.set_personal and not args.per_rater:
        raise RLComposerError("--set-personal is used with --per-rater")
    if args.per_rater and args.rater is not None:
        raise RLComposerError("--per-rater trains every rater's weights: give it without --rater "
                              "(--rater trains one rater's model from that rater's answers alone)")
    prior = load_prior(config.prior)
    url = resolve_existing_db(args, with_ratings=True)
    store = open_store(url)
    data = load_training_data(store, tag=args.tag, rater=args.rater)
    log = (lambda message: None) if args.quiet else (lambda message: say(args, message))
    if args.per_rater:
        _train_per_rater(args, config, prior, store, data, out, display_url(url), log)
        return
    ensemble = train_reward_model(data.comparisons, data.stars, config, prior, log=log)
    ensemble.metrics["data"].update(db=display_url(url), tag=args.tag, rater_filter=args.rater)
    save_reward_model(ensemble, out)
    held = ensemble.metrics["held_out"]
    result = {"out": str(out), **ensemble.metrics}

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    emit(args, result, f"reward model written to {out}: held-out accuracy {fmt(held['accuracy'])}, "
                        f"log-loss {fmt(held['log_loss'])}, ECE {fmt(held['ece'])} "
                        f"({held['pairs']} held-out comparisons)")


def _train_per_rater(args, config, prior, store, data, out: Path, db: str, log) -> None:
    """``reward train --per-rater``: the population model and every rater's weights in one directory,
    and per rater the held-out accuracy of the population, rater-alone and personal models."""
    from rlcomposer.config import config_from_dict, parse_overrides
    from rlcomposer.preferences.personal_reward import (
        save_personal_reward_model,
        train_personal_reward_model,
    )
    from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig

    personal = config_from_dict(PersonalRewardConfig, parse_overrides(args.set_personal), "--set-personal")
    raters = [r.name for r in store.raters()]
    model = train_personal_reward_model(data.comparisons, data.stars, config, personal, prior, raters=raters,
                                        log=log)
    model.metrics["data"] = {"db": db, "tag": args.tag, "raters": list(model.raters),
                             "answers": list(model.answers)}
    save_personal_reward_model(model, out)
    rows = model.metrics.get("per_rater", [])

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"personal reward model written to {out}: {len(model.raters)} raters "
             f"(population model in {out / 'population'}; penalty {personal.penalty:g})"]
    if rows:
        lines.append(f"held-out accuracy against each rater's own answers ({personal.folds}-fold over the "
                     "rater's comparisons; population: its out-of-fold predictions):")
        width = max(len(r["rater"]) for r in rows)
        lines.append(f"  {'rater':<{width}}  answers  population  alone  personal")
        for r in rows:
            lines.append(f"  {r['rater']:<{width}}  {r['comparisons']:>7}  {fmt(r['population']):>10}  "
                         f"{fmt(r['alone']):>5}  {fmt(r['personal']):>8}")
    silent = [r for r, n in zip(model.raters, model.answers, strict=True) if n == 0]
    if silent:
        lines.append(f"no answers from {', '.join(silent)}: they are scored by the population model")
    emit(args, {"out": str(out), **model.metrics}, "\n".join(lines))


# -------------------------------------------------------------- register
def register(commands: Commands, ratings: Commands) -> None:
    """Add ``simulate`` to the ``ratings`` group's actions, and ``reward train``."""
    simulate = ratings.add_parser(
        "simulate", help="a simulated listener rates the pool, like a person would",
        description="A listener function (a built-in name: lyrical, rhythmic, adventurous; or "
                    "package.module:function) answers comparisons and gives stars with noise, as "
                    "rater sim:<function>, through the same store functions as the app. Its noise "
                    "is calibrated on the pool melodies (or --reference-tag).")
    add_db_command_options(simulate)
    simulate.add_argument("--listener", required=True, metavar="SPEC",
                          help="built-in listener name or package.module:function; " + CALLABLE_SEARCH_NOTE)
    simulate.add_argument("--pairs", type=non_negative_int, default=0, help="comparisons to answer")
    simulate.add_argument("--stars", type=non_negative_int, default=0, help="star ratings to give (default 0)")
    simulate.add_argument("--tag", default=None, help="only melodies of this tag (default: the whole pool)")
    simulate.add_argument("--reference-tag", default=None,
                          help="calibrate the listener's spread on this tag (default: --tag / the pool)")
    simulate.add_argument("--strategy", choices=("random", "active"), default="random",
                          help="random pairs, or where --reward's ensemble disagrees most (a personal model: "
                               "where it is least sure of this listener's own taste)")
    simulate.add_argument("--reward", default=None, metavar="RM", help="reward-model directory (--strategy active)")
    simulate.add_argument("--candidates", type=int, default=256, help="candidate pairs per active choice")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    simulate.add_argument("--temperature", type=float, default=0.5,
                          help="Bradley-Terry temperature in units of the listener's score spread (default 0.5)")
    simulate.add_argument("--mistake-rate", type=float, default=0.1, help="share of random answers (default 0.1)")
    simulate.add_argument("--tie-band", type=float, default=0.05,
                          help="score difference below this many spreads is a tie (default 0.05)")
    simulate.add_argument("--star-noise", type=float, default=0.5,
                          help="noise on the score before stars, in spreads (default 0.5)")
    simulate.set_defaults(handler=cmd_ratings_simulate)

    reward = commands.add_parser("reward", help="the reward model learnt from ratings")
    reward_commands = reward.add_subparsers(dest="reward_command", metavar="ACTION", required=True)
    train = reward_commands.add_parser(
        "train", help="train a reward-model ensemble on the database's comparisons and stars",
        description="Bradley-Terry on comparisons (ties = 1/2, skips ignored) and per-rater z-scored "
                    "stars, an ensemble on bootstrap resamples, encoder initialised from the prior. "
                    "Prints held-out accuracy, log-loss and calibration; writes a model directory.")
    add_db_command_options(train)
    train.add_argument("--out", required=True, metavar="RM", help="reward-model directory to write")
    train.add_argument("--tag", default=None, help="only ratings of melodies of this tag")
    train.add_argument("--rater", default=None, help="only this rater's ratings (e.g. sim:lyrical)")
    train.add_argument("--config", default=None, metavar="YAML", help="RewardModelConfig as YAML")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (repeatable), e.g. --set epochs=30")
    train.add_argument("--per-rater", action="store_true",
                       help="a personal reward model: the population model on everyone's answers and each "
                            "rater's weights on that rater's answers (pulled toward the population); prints "
                            "per rater the held-out accuracy of the population, rater-alone and personal "
                            "models; use it with `generate --reward RM --rater NAME --best-of N`")
    train.add_argument("--set-personal", action="append", default=[], metavar="KEY=VALUE",
                       help="override a PersonalRewardConfig key with --per-rater (repeatable), "
                            "e.g. --set-personal penalty=30")
    train.set_defaults(handler=cmd_reward_train)
