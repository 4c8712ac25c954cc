"""What the command groups share: output, argument types, the corpus cache and the database URL."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rlcomposer.errors import RLComposerError

ENV_CACHE_DIR = "RLCOMPOSER_CACHE_DIR"


def emit(args: argparse.Namespace, result: dict[str, Any], text: str | None = None) -> None:
    """Print ``result`` as JSON with ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def say(args: argparse.Namespace, message: str) -> None:
    """Progress and notes: to stderr under ``--json``, so stdout stays clean JSON."""
    print(message, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


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


def default_cache_dir() -> Path:
    """Where the parsed corpus is cached: ``$RLCOMPOSER_CACHE_DIR`` or the user cache folder."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rlcomposer")) / "corpus"


def corpus_config(args: argparse.Namespace):
    from rlcomposer.corpus.build import CorpusConfig

    kwargs: dict[str, Any] = {}
    if getattr(args, "max_tunes", None) is not None:
        kwargs["max_tunes_per_collection"] = args.max_tunes
    if getattr(args, "workers", None) is not None:
        kwargs["workers"] = args.workers
    return CorpusConfig(**kwargs)


def load_corpus(args: argparse.Namespace):
    from rlcomposer.corpus.build import load_corpus

    return load_corpus(Path(args.cache_dir), corpus_config(args))


def resolve_db(args: argparse.Namespace) -> str:
    """The database URL of a command: ``--db``, else ``$RLCOMPOSER_DATABASE_URL``, else the default."""
    from rlcomposer.feedback.database import ENV_DATABASE_URL, resolve_database_url

    explicit = getattr(args, "db", None)
    if explicit is not None and not explicit.strip():
        raise RLComposerError("--db is empty: give a URL such as sqlite:///ratings.sqlite3")
    return resolve_database_url(explicit, os.environ.get(ENV_DATABASE_URL))





# --------------------------------------------------------------------- db
