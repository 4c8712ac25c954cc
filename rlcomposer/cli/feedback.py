"""``rlcomposer db``, ``pool add`` and ``ratings export``: the rating database and what goes in and out.

Every command here takes ``--db URL`` (:func:`~rlcomposer.cli.common.add_db_option`),
which wins over ``$RLCOMPOSER_DATABASE_URL``; the default is the SQLite file printed by
``rlcomposer db where``. :func:`register` creates the ``ratings`` group and returns its
actions, so that :mod:`rlcomposer.cli.reward` can add ``ratings simulate`` to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rlcomposer.cli.common import (
    Commands,
    add_corpus_options,
    add_db_command_options,
    add_melody_shape_options,
    check_bars,
    emit,
    load_corpus,
    positive_int,
    resolve_db,
    resolve_existing_db,
    say,
)


# --------------------------------------------------------------------- db
def cmd_db_where(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.database import ENV_DATABASE_URL, display_url, sqlite_path

    url = resolve_db(args)
    path = sqlite_path(url)
    source = "--db" if args.db else f"${ENV_DATABASE_URL}" if os.environ.get(ENV_DATABASE_URL) else "default"
    result = {"url": display_url(url), "path": str(path) if path else None, "source": source}
    emit(args, result, str(path) if path else display_url(url))


def _migrate(args: argparse.Namespace, migrate) -> None:
    from rlcomposer.feedback.database import current_revision, display_url

    url = resolve_db(args)
    before = current_revision(url)
    migrate(url, args.revision)
    after = current_revision(url)
    emit(args, {"url": display_url(url), "from": before, "to": after},
         f"database {display_url(url)}: {before or 'empty'} -> {after or 'empty'}")


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.database import upgrade_database

    _migrate(args, upgrade_database)


def cmd_db_downgrade(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.database import downgrade_database

    resolve_existing_db(args)  # downgrading a database that is not there would create an empty one
    _migrate(args, downgrade_database)


def cmd_db_current(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.database import current_revision, display_url, head_revision

    url = resolve_existing_db(args)
    current, head = current_revision(url), head_revision()
    state = "up to date" if current == head else "empty" if current is None else "behind: run `rlcomposer db upgrade`"
    emit(args, {"url": display_url(url), "current": current, "head": head},
         f"{display_url(url)}: revision {current or '(none)'}, newest {head} ({state})")


# ------------------------------------------------------------------- pool
def _model_provenance(spec: str) -> tuple[str, str, dict[str, Any], str | None]:
    """(name, kind, config, path) of a ``--model`` value, for the models table."""
    from rlcomposer.checkpoints import CONFIG_FILE
    from rlcomposer.prior.model import prior_directory

    if spec in ("random", "corpus"):
        return spec, spec, {}, None
    directory = prior_directory(spec).resolve()
    config: dict[str, Any] = {}
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    kind = str(config.get("kind", "prior")) if isinstance(config, dict) else "prior"
    return ("prior" if spec == "prior" else str(directory)), kind, config, str(directory)


def cmd_pool_add(args: argparse.Namespace) -> None:
    check_bars(args)
    from rlcomposer.feedback.database import display_url
    from rlcomposer.feedback.store import check_tag, open_store
    from rlcomposer.prior.generation import GenerationConfig, sample_melodies
    from rlcomposer.prior.registry import resolve_model

    check_tag(args.tag)
    config = GenerationConfig(model=args.model, num_melodies=args.n, seed=args.seed, num_bars=args.bars,
                              temperature=args.temperature, top_k=args.top_k, formats=("json",),
                              metre=args.metre, key=args.key or "C", mode=args.mode)
    url = resolve_db(args)
    store = open_store(url)  # fail on a bad database before sampling
    model = resolve_model(config.model, lambda: load_corpus(args).melodies("test"))
    name, kind, model_config, path = _model_provenance(args.model)
    model.name = name
    say(args, f"sampling {config.num_melodies} melodies from {args.model} (seed {config.seed})")
    melodies = sample_melodies(model, config)
    result = store.add_melodies(melodies, args.tag, model=name, model_kind=kind,
                                model_config={**model_config, "generation": {
                                    "temperature": config.temperature, "top_k": config.top_k}}
                                if model_config else {}, model_path=path, experiment=args.experiment)
    emit(args, {"db": display_url(url), "tag": args.tag, "model": name, "added": result.added,
                "already_there": result.existing, "melody_ids": result.ids},
         f"added {result.added} melodies to tag '{args.tag}' in {display_url(url)}"
         + (f" ({result.existing} were already there)" if result.existing else ""))


# ---------------------------------------------------------------- ratings
def cmd_ratings_export(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.export import check_export_path, export_ratings, format_rows
    from rlcomposer.feedback.store import open_store

    if args.out != "-":
        check_export_path(args.out, args.format)  # a bad path fails before the database is touched
    store = open_store(resolve_existing_db(args, with_ratings=True))
    if args.out == "-":
        rows = store.export_rows(tags=args.tag, rater_names=args.rater)
        sys.stdout.write(format_rows(rows, args.format or "csv"))
        return
    count = export_ratings(store, args.out, args.format, tags=args.tag, raters=args.rater)
    emit(args, {"out": str(args.out), "rows": count}, f"wrote {count} ratings and comparisons to {args.out}")


def cmd_ratings_forget(args: argparse.Namespace) -> None:
    from rlcomposer.errors import RLComposerError
    from rlcomposer.feedback.database import display_url
    from rlcomposer.feedback.store import FeedbackError, open_store

    url = resolve_existing_db(args, with_ratings=True)
    store = open_store(url)
    rater = store.find_rater(args.rater)
    if rater is None:
        known = ", ".join(r.name for r in store.raters()[:20]) or "none"
        raise FeedbackError(f"there is no rater called {args.rater!r} in {display_url(url)} (raters: {known}); "
                            "nothing removed")
    model = None
    if args.reward:  # read before anything is removed: a bad model directory removes nothing
        from rlcomposer.preferences.personal_reward import PersonalRewardModel
        from rlcomposer.preferences.reward_functions import resolve_reward

        model = resolve_reward(args.reward)
        if not isinstance(model, PersonalRewardModel):
            raise RLComposerError(f"--reward '{args.reward}' is not a personal reward model "
                                  "(`reward train --per-rater`): it holds no rater's weights; nothing removed")
    removed = store.forget_rater(rater.name)
    lines = [f"forgot rater {removed['rater']!r} in {display_url(url)}: {removed['comparisons']} comparisons, "
             f"{removed['star_ratings']} star ratings, {removed['rating_sessions']} rating sessions, "
             f"{removed['current_items']} items on screen, {removed['heard_melodies']} heard melodies, "
             f"{removed['personal_melodies']} made-for-you melodies"
             + (", and their personal link" if removed["had_link"] else "") + " removed"]
    result = {"db": display_url(url), **removed, "reward": None}
    if model is not None:
        from rlcomposer.preferences.personal_reward import save_personal_reward_model

        try:
            model.rater_index(rater.name)
        except RLComposerError:
            lines.append(f"{args.reward} held no weights of {rater.name!r}: left as it was")
            result["reward"] = {"path": args.reward, "weights_removed": False}
        else:
            save_personal_reward_model(model.without(rater.name), args.reward)
            lines.append(f"removed {rater.name!r}'s personal weights from {args.reward} (its population "
                         "model was trained with their answers too: retrain it with `reward train --per-rater` "
                         "to remove them from it)")
            result["reward"] = {"path": args.reward, "weights_removed": True}
    emit(args, result, "\n".join(lines))


# --------------------------------------------------------------- register
def register(commands: Commands) -> Commands:
    """Add ``db``, ``pool add`` and ``ratings export``; return the ``ratings`` group's actions."""
    db = commands.add_parser("db", help="the rating database: where it is, migrations")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    where = db_commands.add_parser("where", help="print the database in use (the SQLite file, or the URL)")
    add_db_command_options(where)
    where.set_defaults(handler=cmd_db_where)
    upgrade = db_commands.add_parser("upgrade", help="migrate the database to the newest schema",
                                     description="Run the Alembic migrations (creates the tables on "
                                                 "an empty database). Safe to run again.")
    add_db_command_options(upgrade)
    upgrade.add_argument("--revision", default="head", help="target revision (default head)")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    downgrade = db_commands.add_parser("downgrade", help="migrate down (`--revision base` drops every table)")
    add_db_command_options(downgrade)
    downgrade.add_argument("--revision", required=True, help="target revision, e.g. base")
    downgrade.set_defaults(handler=cmd_db_downgrade)
    current = db_commands.add_parser("current", help="the database's revision and the newest one")
    add_db_command_options(current)
    current.set_defaults(handler=cmd_db_current)

    pool = commands.add_parser("pool", help="the pool of melodies listeners rate")
    pool_commands = pool.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    add = pool_commands.add_parser(
        "add", help="sample melodies from a model into the database for rating",
        description="Sample melodies and store them (with model, seed and tag) as candidates for "
                    "rating. A melody already in the tag is not added twice.")
    add_db_command_options(add)
    add.add_argument("--model", default="prior", help="model directory, or prior (default) / corpus / random")
    add.add_argument("--n", type=positive_int, default=20, help="number of melodies (default 20)")
    add.add_argument("--tag", required=True, help="label of this batch, e.g. prior-round1 or tuned-exp3")
    add.add_argument("--seed", type=int, default=0, help="random seed, 0 or more (default 0)")
    add_melody_shape_options(add)
    add.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    add.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    add.add_argument("--experiment", default=None, help="experiment name stored with each melody")
    add_corpus_options(add, cache_dir_help="corpus cache folder (for --model corpus)",
                       max_tunes_help=argparse.SUPPRESS)
    add.set_defaults(handler=cmd_pool_add)

    ratings = commands.add_parser("ratings", help="listeners' ratings and comparisons")
    ratings_commands = ratings.add_subparsers(dest="ratings_command", metavar="ACTION", required=True)
    export = ratings_commands.add_parser(
        "export", help="write every rating and comparison, with its melody and rater, as CSV or JSONL")
    add_db_command_options(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default=None,
                        help="csv or jsonl (default: from the file name; csv for stdout)")
    export.add_argument("--out", default="-", help="file to write, or - for stdout (default)")
    export.add_argument("--tag", action="append", help="only rows about melodies of this tag (repeatable)")
    export.add_argument("--rater", action="append", help="only this rater's rows (repeatable)")
    export.set_defaults(handler=cmd_ratings_export)
    forget = ratings_commands.add_parser(
        "forget", help="remove a rater: their answers, sessions, made-for-you melodies, personal link (and, "
                       "with --reward, their personal weights)",
        description="Delete the rater and everything of theirs from the database (comparisons, star "
                    "ratings, rating sessions, the item on their screen, heard melodies, the melodies "
                    "`study personalise` made for them (tags personal:STUDY:RATER_ID), the rater with "
                    "their sign-in link) and print what was removed. Personal weights live in model "
                    "directories: --reward RM also rewrites that personal reward model without the "
                    "rater's weights (its population part keeps what it learnt from their answers until "
                    "it is retrained). An unknown rater removes nothing.")
    add_db_command_options(forget)
    forget.add_argument("rater", metavar="RATER", help="the rater's name (e.g. sim:lyrical, or a person's name)")
    forget.add_argument("--reward", default=None, metavar="RM",
                        help="a personal reward model (`reward train --per-rater`) to remove the rater's weights from")
    forget.set_defaults(handler=cmd_ratings_forget)
    return ratings_commands
