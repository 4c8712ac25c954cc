"""What the command groups share: the common options, output, argument types, the corpus and the database.

The options several commands take are defined here once: :func:`add_output_options`
(``--json``, ``--quiet``), :func:`add_db_option` (``--db URL``), both together
for the commands on the rating database (:func:`add_db_command_options`) and
:func:`add_corpus_options` (``--cache-dir``, ``--max-tunes``). This module imports
only the standard library at load time, so that building the parser stays fast.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlcomposer._startup import working_directory_last  # noqa: F401  (the CLI's main calls it)
from rlcomposer.errors import RLComposerError
from rlcomposer.validation import Range

Commands = argparse._SubParsersAction
"""The ``add_subparsers()`` object a group's ``register`` adds its (sub)commands to."""

ENV_CACHE_DIR = "RLCOMPOSER_CACHE_DIR"

QUIET_PROGRESS_BARS = "no progress bars"
QUIET_PROGRESS_OUTPUT = "no progress output"
DB_HELP = ("database URL or SQLite file (default: $RLCOMPOSER_DATABASE_URL, "
           "else the file printed by `rlcomposer db where`)")
CACHE_DIR_HELP = f"corpus cache folder (default: ${ENV_CACHE_DIR} or the user cache folder)"
MAX_TUNES_HELP = "parse at most this many tunes per collection (for quick trials)"


# ------------------------------------------------------------------- types
def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_options(args: argparse.Namespace, ranges: dict[str, Range]) -> None:
    """Each numeric ``--option`` given (not None) in its range: else a one-line error naming it and the range.

    ``type=float`` lets ``nan`` and ``inf`` through, so every numeric option a handler
    uses directly is checked here (options that fill a config are checked by the config).
    """
    for flag, allowed in ranges.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            allowed.check(value, flag)


def check_bars(args: argparse.Namespace) -> None:
    """``--bars`` from 1 to ``MAX_BARS``, checked before torch is imported, so a bad length fails at once."""
    from rlcomposer.music.melody import MAX_BARS

    check_options(args, {"--bars": Range(1, MAX_BARS, whole=True)})


# ---------------------------------------------------------- shared options
def add_output_options(parser: argparse.ArgumentParser, *, quiet_help: str = QUIET_PROGRESS_BARS) -> None:
    """``--json`` (the result as JSON on stdout, notes to stderr) and ``--quiet``."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help=quiet_help)


def add_db_option(parser: argparse.ArgumentParser, *, help: str = DB_HELP) -> None:
    """``--db URL``; :func:`resolve_db` reads it (it wins over ``$RLCOMPOSER_DATABASE_URL``)."""
    parser.add_argument("--db", default=None, metavar="URL", help=help)


def add_db_command_options(parser: argparse.ArgumentParser) -> None:
    """``--db``, ``--json`` and ``--quiet``: the options of every command on the rating database."""
    add_db_option(parser)
    add_output_options(parser, quiet_help=QUIET_PROGRESS_OUTPUT)


def add_melody_shape_options(parser: argparse.ArgumentParser, *, key: bool = True,
                             bars_default: int | None = 4) -> None:
    """``--metre``, ``--mode``, ``--bars`` (and ``--key``): the shape of the melodies to make.

    :func:`melody_condition` reads the metre and mode; the defaults (None) mean
    4/4 major, or what a config file says. ``--bars`` is checked by :func:`check_bars`
    (or the config it fills).
    """
    from rlcomposer.music.keys import MODES
    from rlcomposer.music.metre import MAX_BARS, METRE_NAMES

    parser.add_argument("--metre", default=None, metavar="N/D",
                        help=f"time signature: {', '.join(METRE_NAMES)} (default 4/4)")
    parser.add_argument("--mode", default=None, help=f"mode: {', '.join(MODES)} (default major)")
    if key:
        parser.add_argument("--key", default=None, metavar="TONIC",
                            help="tonic to write the melodies in: C, G, D, A, E, F, Bb, Eb, F#, ... "
                                 "(default C; melodies are made on C and transposed)")
    default_text = f" (default {bars_default})" if bars_default is not None else ""
    parser.add_argument("--bars", type=int, default=bars_default,
                        help=f"melody length in bars of the metre, 1..{MAX_BARS}{default_text}")


def melody_condition(args: argparse.Namespace, num_steps: int | None = None):
    """The :class:`~rlcomposer.prior.model.MelodyCondition` of ``--metre`` and ``--mode``."""
    from rlcomposer.prior.model import MelodyCondition

    return MelodyCondition(args.metre or "4/4", args.mode or "major", num_steps)


def add_corpus_options(parser: argparse.ArgumentParser, *, cache_dir_help: str = CACHE_DIR_HELP,
                       max_tunes_help: str = MAX_TUNES_HELP) -> None:
    """``--cache-dir`` and ``--max-tunes``; :func:`load_corpus` and :func:`corpus_cache_dir` read them."""
    parser.add_argument("--cache-dir", default=None, help=cache_dir_help)
    parser.add_argument("--max-tunes", type=positive_int, default=None, help=max_tunes_help)


# ------------------------------------------------------- module:function names
CALLABLE_SEARCH_NOTE = ("module:function is imported from installed packages and $PYTHONPATH, then the "
                        "working directory (which never shadows an installed package); "
                        "path/to/file.py:function loads that file")


# ------------------------------------------------------------------ output
@contextmanager
def disk_errors(target: str, new_folder: str | Path | None = None) -> Iterator[None]:
    """Turn a failed write (a full disk, a quota, a read-only filesystem, no permission) into one
    line naming ``target`` and the file, instead of a traceback. The writers clean up their own
    files; ``new_folder`` (one that did not exist before the block) is removed if the block fails
    and leaves it empty."""
    try:
        yield
    except BaseException as error:
        if new_folder is not None and Path(new_folder).is_dir() and not any(Path(new_folder).iterdir()):
            Path(new_folder).rmdir()
        if not isinstance(error, OSError):
            raise
        if error.errno not in WRITE_ERRNOS:
            raise
        where = f" ({error.filename})" if error.filename else ""
        raise RLComposerError(f"cannot write {target}{where}: {error.strerror or error}") from None


WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
"""The errors of a write that the user fixes (free space, permissions), not a bug."""


def stated_kl(args: argparse.Namespace, kl: float | None) -> tuple[float | None, str]:
    """The KL to the prior a sampling command states (None: not stated) and its text: a
    temperature other than 1 or a top-k cut samples from another distribution than the model's,
    so the KL of best-of-N or of a policy's best-of-k does not describe it; the text says so."""
    temperature, top_k = getattr(args, "temperature", 1.0), getattr(args, "top_k", None)
    if temperature is None:  # continue's default: 1 wherever it has a KL to state
        temperature = 1.0
    if kl is None:
        return None, ""
    if temperature != 1.0 or top_k is not None:
        how = " and ".join(([f"temperature {temperature:g}"] if temperature != 1.0 else [])
                           + ([f"top-k {top_k}"] if top_k is not None else []))
        return None, f"; KL to the prior not stated (sampled at {how}, not from the model itself)"
    return kl, f"; KL to the prior about {kl:.2f} nats a melody"


def emit(args: argparse.Namespace, result: dict[str, Any], text: str | None = None) -> None:
    """Print ``result`` as JSON with ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def say(args: argparse.Namespace, message: str) -> None:
    """Progress and notes: to stderr under ``--json``, so stdout stays clean JSON."""
    print(message, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


# ------------------------------------------------------------------ corpus
def default_cache_dir() -> Path:
    """Where the parsed corpus is cached: ``$RLCOMPOSER_CACHE_DIR`` or the user cache folder."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rlcomposer")) / "corpus"


def corpus_cache_dir(args: argparse.Namespace) -> str | Path:
    """``--cache-dir`` as given, else :func:`default_cache_dir`."""
    given = getattr(args, "cache_dir", None)
    return given if given is not None else default_cache_dir()


def corpus_config(args: argparse.Namespace):
    from rlcomposer.corpus.corpus import CorpusConfig

    kwargs: dict[str, Any] = {}
    if getattr(args, "max_tunes", None) is not None:
        kwargs["max_tunes_per_collection"] = args.max_tunes
    if getattr(args, "workers", None) is not None:
        kwargs["workers"] = args.workers
    return CorpusConfig(**kwargs)


def load_corpus(args: argparse.Namespace):
    """The cached corpus of ``--cache-dir`` (a one-line error says to run ``corpus build`` if missing)."""
    from rlcomposer.corpus.build import load_corpus

    return load_corpus(Path(corpus_cache_dir(args)), corpus_config(args))


# ---------------------------------------------------------------- database
def resolve_db(args: argparse.Namespace) -> str:
    """The database URL of a command: ``--db``, else ``$RLCOMPOSER_DATABASE_URL``, else the default."""
    from rlcomposer.feedback.database import ENV_DATABASE_URL, resolve_database_url

    explicit = getattr(args, "db", None)
    if explicit is not None and not explicit.strip():
        raise RLComposerError("--db is empty: give a URL such as sqlite:///ratings.sqlite3")
    return resolve_database_url(explicit, os.environ.get(ENV_DATABASE_URL))


def resolve_existing_db(args: argparse.Namespace, *, with_ratings: bool = False) -> str:
    """:func:`resolve_db` for commands that only read: a SQLite file that does not exist is an error
    naming where it looked (instead of a new, empty database). ``with_ratings``: the database must
    hold the rating tables too (else reading it would create them in an empty or foreign file)."""
    from rlcomposer.feedback.database import (
        ENV_DATABASE_URL,
        require_existing_database,
        require_rating_tables,
    )

    url = resolve_db(args)
    source = ("--db" if getattr(args, "db", None) is not None
              else f"${ENV_DATABASE_URL}" if os.environ.get(ENV_DATABASE_URL) else "the default location")
    require_existing_database(url, source)
    if with_ratings:
        require_rating_tables(url)
    return url
