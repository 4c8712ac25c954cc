"""``rlcomposer study create|list|close|link|personalise``: listening studies that the rating app serves.

A study (see :mod:`rlcomposer.feedback.study`) is served at ``?study=NAME`` of the
app's address; ``create`` prints that address, ``link`` a rater's new personal link
(a lost link: the old one stops working); ``personalise`` makes each rater's "made for
you" melodies and the population's, for the app's blind A/B
(:mod:`rlcomposer.feedback.personalise`).
"""

from __future__ import annotations

import argparse

from rlcomposer.cli.common import (
    Commands,
    add_db_command_options,
    emit,
    non_negative_int,
    positive_int,
    resolve_db,
    resolve_existing_db,
    say,
)
from rlcomposer.errors import RLComposerError

DEFAULT_BEST_OF = 54
"""``study personalise --best-of``: as :data:`rlcomposer.feedback.personalise.DEFAULT_BEST_OF`."""
DEFAULT_MELODIES = 8

DEFAULT_BASE_URL = "http://localhost:8501"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def _text(value: str | None, path: str | None, what: str) -> str | None:
    if path is None:
        return value
    from rlcomposer.config import MAX_PROSE_FILE_BYTES, read_text_file

    return read_text_file(path, f"cannot read the {what} file {path}", MAX_PROSE_FILE_BYTES).strip()


def _summary(study, progress) -> dict:
    spec = study.spec
    return {"name": study.name, "status": study.status, "mode": spec.mode, "pool_tags": list(spec.pool_tags),
            "items_per_rater": spec.items_per_rater, "selection": spec.selection,
            "reward_model": spec.reward_model, "listen_fraction": spec.listen_fraction,
            "completion_code": spec.completion_code, "raters": progress.raters,
            "completed": progress.completed, "answers": progress.answers, "skips": progress.skips}


def cmd_study_create(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.store import open_store
    from rlcomposer.feedback.study import (
        DEFAULT_CONSENT,
        StudySpec,
        create_study,
        study_progress,
        study_url,
    )

    tags = tuple(t.strip() for t in (args.tags or "").split(",") if t.strip())
    selection = "active" if args.reward_model else "random"
    spec = StudySpec(
        name=args.name, pool_tags=tags, mode=args.mode, items_per_rater=args.items,
        instructions=_text(args.instructions, args.instructions_file, "instructions") or "",
        consent_text=_text(args.consent, args.consent_file, "consent") or DEFAULT_CONSENT,
        selection=selection, reward_model=args.reward_model, completion_code=args.completion_code,
        listen_fraction=args.listen_fraction, repeat_share=args.repeat_share)
    store = open_store(resolve_db(args))
    study = create_study(store, spec)
    url = study_url(study.name, args.base_url)
    result = dict(_summary(study, study_progress(store, study)), url=url)
    emit(args, result, f"study {study.name} created ({spec.mode}, {spec.items_per_rater} items per rater, "
                       f"from {', '.join(tags) or 'the whole pool'}); raters open {url}")


def cmd_study_list(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.store import open_store
    from rlcomposer.feedback.study import list_studies, study_progress, study_url

    store = open_store(resolve_existing_db(args, with_ratings=True))  # a mistyped path is no new database
    rows = []
    for study in list_studies(store):
        rows.append(dict(_summary(study, study_progress(store, study)), url=study_url(study.name, args.base_url)))
    lines = [f"{r['name']}\t{r['status']}\t{r['mode']}\t{','.join(r['pool_tags']) or '(whole pool)'}\t"
             f"{r['raters']} raters, {r['completed']} completed, {r['answers']} answers, {r['skips']} skips"
             f"\t{r['url']}" for r in rows]
    emit(args, {"studies": rows}, "\n".join(lines) if lines else "no studies yet (`rlcomposer study create`)")


def cmd_study_close(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.store import open_store
    from rlcomposer.feedback.study import close_study, study_progress

    store = open_store(resolve_existing_db(args, with_ratings=True))  # a mistyped path is no new database
    study = close_study(store, args.name)
    progress = study_progress(store, study)
    emit(args, _summary(study, progress), f"study {study.name} closed: {progress.raters} raters, "
                                          f"{progress.completed} completed, {progress.answers} answers")


def cmd_study_link(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.store import open_store
    from rlcomposer.feedback.study import rater_link

    store = open_store(resolve_db(args))
    url = rater_link(store, args.name, args.rater, args.base_url)
    emit(args, {"study": args.name, "rater": args.rater, "url": url},
         f"new link of {args.rater} for study {args.name} (their old link no longer works): {url}")


def cmd_study_personalise(args: argparse.Namespace) -> None:
    from rlcomposer.config import load_config, parse_overrides
    from rlcomposer.feedback.personalise import (
        check_personalisable,
        fit_study_model,
        personalise_study,
        study_answers,
        study_shape,
    )
    from rlcomposer.feedback.store import open_store
    from rlcomposer.feedback.study import get_study
    from rlcomposer.preferences.personal_reward import (
        is_personal_reward_model,
        load_personal_reward_model,
    )
    from rlcomposer.preferences.reward_model import RewardModelConfig
    from rlcomposer.prior.model import load_prior
    from rlcomposer.prior.registry import resolve_model

    if args.reward is not None and args.set:
        raise RLComposerError("--set configures the reward model fitted here: give it without --reward")
    store = open_store(resolve_existing_db(args, with_ratings=True))  # a mistyped path is no new database
    study = get_study(store, args.name)
    answers = study_answers(store, study)
    check_personalisable(study, answers)
    shape = study_shape(store, study)
    base = resolve_model(args.model)
    log = (lambda message: None) if args.quiet else (lambda message: say(args, message))
    if args.reward is not None:
        if not is_personal_reward_model(args.reward):
            raise RLComposerError(f"--reward '{args.reward}' is not a personal reward model directory "
                                  "(`rlcomposer reward train --per-rater --out DIR`)")
        model = load_personal_reward_model(args.reward)
    else:
        config = load_config(RewardModelConfig, None, parse_overrides(args.set))
        log(f"fitting a personal reward model on study {study.name}'s answers "
            f"({len(answers.comparisons)} comparisons, {len(answers.answered)} raters)")
        model = fit_study_model(answers, config, prior=load_prior(config.prior), log=None)
    result = personalise_study(store, study, model, base, args.best_of, args.melodies, args.seed, answers, log)
    lines = [f"study {study.name}: made-for-you melodies of {shape.text}, best-of-{args.best_of} "
             f"from {args.model}"]
    for batch in result.raters:
        if batch.note:
            lines.append(f"  {batch.rater}: none (fell back: {batch.note})")
        else:
            lines.append(f"  {batch.rater}: {batch.made} melodies made for them ({batch.added} new) as {batch.tag}")
    lines.append(f"  population: {result.population_made} melodies ({result.population_added} new) "
                 f"as {result.population_tag}")
    fell = result.fallbacks
    if fell:
        lines.append(f"{len(fell)} rater{'s' if len(fell) > 1 else ''} fell back to the population model "
                     f"and get no made-for-you pairs: {', '.join(b.rater for b in fell)}")
    emit(args, result.as_dict(), "\n".join(lines))


def register(commands: Commands) -> None:
    """Add ``study create``, ``study list``, ``study close``, ``study link`` and ``study personalise``."""
    study = commands.add_parser("study", help="listening studies the rating app serves (?study=NAME)")
    actions = study.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create a study and print the address raters open",
        description="Store a listening study: its pool tags, mode, items per rater, texts and selection. "
                    "The app serves it at ?study=NAME.")
    add_db_command_options(create)
    create.add_argument("name", help="the study's name (letters, digits, '_.:/-'), used in its address")
    create.add_argument("--tags", default="", help="comma-separated pool tags (default: the whole pool)")
    create.add_argument("--mode", choices=("stars", "pairs", "mixed-tags"), default="pairs",
                        help="stars, pairs (default) or mixed-tags (each pair: one melody of each of two tags)")
    create.add_argument("--items", type=positive_int, default=20, help="answers per rater to complete (default 20)")
    create.add_argument("--instructions", default=None, help="what raters read first (default: built-in text)")
    create.add_argument("--instructions-file", default=None, help="read the instructions from this file")
    create.add_argument("--consent", default=None, help="the consent line (default: built-in text)")
    create.add_argument("--consent-file", default=None, help="read the consent line from this file")
    create.add_argument("--reward-model", default=None,
                        help="active selection with this reward model (a directory, or latest)")
    create.add_argument("--completion-code", default=None, help="a code shown on the completion screen")
    create.add_argument("--listen-fraction", type=_fraction, default=1.0,
                        help="share of each melody that must play before answering (0-1, default 1)")
    create.add_argument("--repeat-share", type=_fraction, default=0.05,
                        help="share of deliberate repeats (0-0.5, default 0.05)")
    create.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"the app's address (default {DEFAULT_BASE_URL})")
    create.set_defaults(handler=cmd_study_create)
    listing = actions.add_parser("list", help="every study with its progress and address")
    add_db_command_options(listing)
    listing.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"the app's address (default {DEFAULT_BASE_URL})")
    listing.set_defaults(handler=cmd_study_list)
    close = actions.add_parser("close", help="close a study (it takes no more answers)")
    add_db_command_options(close)
    close.add_argument("name", help="the study's name")
    close.set_defaults(handler=cmd_study_close)
    link = actions.add_parser("link", help="a new personal link for a rater who lost theirs (the old one stops working)")
    add_db_command_options(link)
    link.add_argument("name", help="the study's name")
    link.add_argument("rater", help="the rater's name (as they signed in)")
    link.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"the app's address (default {DEFAULT_BASE_URL})")
    link.set_defaults(handler=cmd_study_link)
    personalise = actions.add_parser(
        "personalise", help="make each rater's made-for-you melodies (and the population's) for the app's A/B",
        description="For each rater of the study with answers, make melodies by best-of-N under their own "
                    "reward (a personal reward model fitted on the study's answers, or --reward), and as many "
                    "under the population model, in the study's metre, key and length; store them in the pool "
                    "as personal:STUDY:RATER_ID and population:STUDY. Raters who completed the study then "
                    "answer a blind A/B of them in the app (Made for you). A rerun adds a new batch.")
    add_db_command_options(personalise)
    personalise.add_argument("name", help="the study's name")
    personalise.add_argument("--reward", default=None, metavar="RM_DIR",
                             help="a personal reward model (`reward train --per-rater`); default: fit one "
                                  "on the study's answers")
    personalise.add_argument("--best-of", type=positive_int, default=DEFAULT_BEST_OF, metavar="N",
                             help=f"candidates per melody (default {DEFAULT_BEST_OF}, about 3 nats from the prior)")
    personalise.add_argument("--melodies", type=positive_int, default=DEFAULT_MELODIES, metavar="K",
                             help=f"melodies per rater, and for the population (default {DEFAULT_MELODIES})")
    personalise.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    personalise.add_argument("--model", default="prior",
                             help="the model the candidates are drawn from: prior (default) or a prior directory")
    personalise.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="reward-model setting of the model fitted here (e.g. epochs=20); repeatable")
    personalise.set_defaults(handler=cmd_study_personalise)
