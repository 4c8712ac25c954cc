"""The ``rlcomposer`` command line: the parser built from the command groups, and :func:`main`.

Each command group is one module with a ``register`` function (its options and
handlers); the options several commands share are in :mod:`rlcomposer.cli.common`.
Bad input ends with one line ``rlcomposer: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from rlcomposer.cli import (
    app,
    continuation,
    corpus,
    experiment,
    feedback,
    melodies,
    prior,
    reward,
    study,
    sweep,
    tune,
)
from rlcomposer.cli.common import working_directory_last
from rlcomposer.errors import RLComposerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlcomposer",
        description="Compose melodies and learn from listeners' ratings which ones they like.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    corpus.register(commands)  # corpus build
    prior.register(commands)  # prior train, prior evaluate
    melodies.register(commands)  # generate, evaluate
    continuation.register(commands)  # continue
    tune.register(commands)  # tune
    experiment.register(commands)  # experiment run, experiment resume
    ratings = feedback.register(commands)  # db ..., pool add, ratings export; returns the ratings group
    reward.register(commands, ratings)  # ratings simulate, reward train
    app.register(commands)  # app
    study.register(commands)  # study create, study list, study close
    sweep.register(commands)  # sweep run, sweep resume, sweep report
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    working_directory_last()  # module:function callables may live there, but never shadow a package
    try:
        args.handler(args)
    except RLComposerError as error:
        message = str(error).replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever was typed
        print(f"rlcomposer: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlcomposer: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
