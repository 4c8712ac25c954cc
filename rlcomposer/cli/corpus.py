"""``rlcomposer corpus build``: parse the folk collections bundled in music21 into the cache."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rlcomposer.cli.common import (
    Commands,
    add_corpus_options,
    add_output_options,
    corpus_cache_dir,
    corpus_config,
    emit,
    positive_int,
)


def cmd_corpus_build(args: argparse.Namespace) -> None:
    from rlcomposer.corpus.build import build_corpus

    cache_dir = corpus_cache_dir(args)
    started = time.monotonic()
    corpus = build_corpus(corpus_config(args), Path(cache_dir), force=args.force,
                          progress=not args.json and not args.quiet)
    seconds = time.monotonic() - started
    stats = corpus.stats
    splits = {split: {"tunes": corpus.num_tunes(split), "steps": corpus.num_steps(split)}
              for split in ("train", "validation", "test")}
    result = {
        "cache_dir": str(cache_dir),
        "parsed": stats.parsed,
        "kept": stats.kept,
        "skipped_by_reason": stats.skipped_by_reason,
        "kept_by_metre": stats.kept_by_metre,
        "kept_by_mode": stats.kept_by_mode,
        "quantised_tuplet_tunes": stats.quantised_tuplet_tunes,
        "quantised_tuplet_notes": stats.quantised_tuplet_notes,
        "from_cache": stats.from_cache,
        "build_seconds": stats.build_seconds,
        "seconds": seconds,
        "splits": splits,
    }
    lines = [
        f"corpus {'read from cache' if stats.from_cache else 'built'} in {seconds:.1f} s ({cache_dir})",
        f"parsed {stats.parsed} tunes, kept {stats.kept}, skipped {stats.parsed - stats.kept}",
    ]
    for reason, count in sorted(stats.skipped_by_reason.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped ({reason}): {count}")
    lines.append("  kept by metre: " + ", ".join(f"{m} {n}" for m, n in stats.kept_by_metre.items()))
    lines.append("  kept by mode: " + ", ".join(f"{m} {n}" for m, n in stats.kept_by_mode.items()))
    lines.append(f"  tuplets quantised to the grid: {stats.quantised_tuplet_notes} notes in "
                 f"{stats.quantised_tuplet_tunes} kept tunes")
    for split, info in splits.items():
        lines.append(f"  {split}: {info['tunes']} tunes, {info['steps']} steps")
    emit(args, result, "\n".join(lines))


def register(commands: Commands) -> None:
    """Add ``corpus build``."""
    corpus = commands.add_parser("corpus", help="the bundled folk corpus")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    build = corpus_commands.add_parser(
        "build", help="parse the folk collections bundled in music21 into the cache",
        description="Parse essenFolksong, oneills1850, airdsAirs and ryansMammoth (shipped with "
                    "music21) on both cores, keep the tunes in the 11 known metres (2/4 to 12/8), "
                    "transpose each so that its tonic is C and record its mode, quantise tuplets "
                    "to the sixteenth grid, split by tune and cache compact arrays. A second build reads the cache.")
    add_output_options(build)
    add_corpus_options(build)
    build.add_argument("--force", action="store_true", help="rebuild even if a cache exists")
    build.add_argument("--workers", type=positive_int, default=None, help="parser processes (default 2)")
    build.set_defaults(handler=cmd_corpus_build)
