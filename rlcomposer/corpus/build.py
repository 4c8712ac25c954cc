"""Building and caching the folk-tune corpus: every tune parsed, deduplicated, split and stored.

Owns the making of a :class:`~rlcomposer.corpus.corpus.Corpus`: the cache's key
and paths, the parse of all tunes (in worker processes), the deduplication, the
split by tune (:func:`~rlcomposer.corpus.corpus.split_of`), the counts of the
build, and the cache's save and load (:func:`build_corpus`,
:func:`load_corpus`). Reading one tune's ABC text is
:mod:`rlcomposer.corpus.abc`'s; the corpus, its config and its counts are
:mod:`rlcomposer.corpus.corpus`'s.

The monophonic folk collections that ship inside music21 (see
:data:`~rlcomposer.corpus.abc.COLLECTIONS`) are parsed once, tune by tune, into
:class:`~rlcomposer.music.melody.Melody` tokens and cached on disk as compact arrays. Nothing is ever
downloaded.

Every tune that is not kept is counted under a reason (see
:data:`~rlcomposer.corpus.abc.SKIP_REASONS`);
``parsed == kept + sum(skipped_by_reason.values())`` always holds.

Exact duplicates (the same tokens, e.g. a tune printed twice in O'Neill's
overlapping files) are kept once, so a tune cannot sit in both train and test;
the later copies count as ``"duplicate"``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.corpus.abc import (
    SKIP_REASONS,
    CorpusError,
    TuneText,
    iter_tunes,
    parse_abc_tune,
)
from rlcomposer.corpus.corpus import SPLITS, Corpus, CorpusConfig, CorpusStats, split_of
from rlcomposer.music.melody import STEPS_PER_BAR, VOCAB_SIZE, MelodyError

CACHE_FORMAT = "rlcomposer.corpus"  # the cache format's name (kept when the module moved)
CACHE_VERSION = 2  # 2: every metre, tonic on C with the mode, tuplets quantised
"""Bump when the encoding of tunes changes, so that old caches are not reused."""

_BUILD_COMMAND = "run `rlcomposer corpus build` first"


# ------------------------------------------------------------------ cache key
def cache_key(config: CorpusConfig) -> str:
    """A short hash of what determines the content: the config, encoding and music21."""
    payload = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "music21": _music21_version(),
        "config": config.content_dict(),
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def cache_paths(config: CorpusConfig, cache_dir: str | Path) -> tuple[Path, Path]:
    """The ``.npz`` arrays and the ``.json`` manifest for ``config`` in ``cache_dir``."""
    cache_dir = Path(cache_dir)
    stem = f"corpus-{cache_key(config)}"
    return cache_dir / f"{stem}.npz", cache_dir / f"{stem}.json"


# ------------------------------------------------------------------ the build
def _parse_task(tune: TuneText) -> tuple[str, bytes | str, dict[str, Any], float]:
    """Worker: ``("ok", int8 token bytes, metadata, seconds)`` or ``("skip", reason, {}, s)``."""
    started = time.perf_counter()
    try:
        melody = parse_abc_tune(tune.text, tune.collection, tune.source)
    except MelodyError as error:
        reason = error.reason if error.reason in SKIP_REASONS else "invalid"
        return "skip", reason, {"message": str(error)}, time.perf_counter() - started
    except Exception as error:  # a music21 bug on one tune must not stop the build
        message = f"{type(error).__name__}: {error}"
        return "skip", "parse-error", {"message": message}, time.perf_counter() - started
    tokens = melody.tokens.astype(np.int8).tobytes()
    return "ok", tokens, melody.metadata, time.perf_counter() - started


def _init_worker() -> None:
    """Turn off music21's beaming for a build: ABC import calls it and it costs half
    the parse time; beams change no note or duration (checked on 600 tunes: the
    same tokens and skip reasons). Set in the worker processes; a one-process
    build sets it for the build only and restores it."""
    from music21 import stream

    stream.Stream.makeBeams = _no_beams  # type: ignore[method-assign]


def _no_beams(self, *, inPlace=False, **keywords):
    return None if inPlace else self


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    # fork is cheap (music21 is already imported); elsewhere spawn is the safe choice
    return multiprocessing.get_context("fork" if sys.platform == "linux" and "fork" in methods
                                       else "spawn")


def _parse_all(tunes: list[TuneText], workers: int, progress: bool):
    from tqdm import tqdm

    bar = tqdm(total=len(tunes), desc="parsing tunes", unit="tune", disable=not progress)
    try:
        if workers == 1 or len(tunes) < 2:
            from music21 import stream

            original = stream.Stream.__dict__["makeBeams"]
            _init_worker()  # the same reading as in the workers, restored below
            try:
                for tune in tunes:
                    yield _parse_task(tune)
                    bar.update()
            finally:
                stream.Stream.makeBeams = original  # type: ignore[method-assign]
            return
        import music21  # noqa: F401 - imported once before the workers fork

        chunksize = max(1, min(16, len(tunes) // (workers * 8)))
        with _pool_context().Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap(_parse_task, tunes, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()


def _build(config: CorpusConfig, progress: bool) -> Corpus:
    started = time.perf_counter()
    tunes: list[TuneText] = []
    available: dict[str, int] = {}
    for collection in config.collections:
        everything = list(iter_tunes(collection))
        available[collection] = len(everything)
        tunes.extend(everything[: config.max_tunes_per_collection])

    per_collection: dict[str, dict[str, Any]] = {
        c: {"available": available[c], "parsed": 0, "kept": 0, "skipped_by_reason": {}}
        for c in config.collections
    }
    chunks: list[bytes] = []
    index: list[dict[str, Any]] = []
    split_ids: list[int] = []
    seen: dict[bytes, str] = {}
    skipped_examples: dict[str, list[str]] = {}
    slowest: list[tuple[float, str]] = []
    for tune, (status, payload, metadata, seconds) in zip(
        tunes, _parse_all(tunes, config.workers, progress), strict=True
    ):
        counts = per_collection[tune.collection]
        counts["parsed"] += 1
        slowest = sorted([*slowest, (seconds, tune.key)], reverse=True)[:5]
        if status == "ok":
            assert isinstance(payload, bytes)
            if payload in seen:
                metadata = {"message": f"the same tokens as {seen[payload]}"}
                status, payload = "skip", "duplicate"
            else:
                seen[payload] = tune.key
        if status != "ok":
            assert isinstance(payload, str)
            skipped = counts["skipped_by_reason"]
            skipped[payload] = skipped.get(payload, 0) + 1
            examples = skipped_examples.setdefault(payload, [])
            if len(examples) < 3:
                examples.append(f"{tune.key}: {metadata.get('message', '')}")
            continue
        counts["kept"] += 1
        chunks.append(payload)
        index.append({**metadata, "tune_index": tune.tune_index})
        split_ids.append(split_of(tune.key, config.validation_fraction, config.test_fraction))

    tokens = np.frombuffer(b"".join(chunks), dtype=np.int8).copy()
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    split_array = np.array(split_ids, dtype=np.int8)

    skipped_total: Counter[str] = Counter()
    for counts in per_collection.values():
        counts["skipped_by_reason"] = dict(sorted(counts["skipped_by_reason"].items()))
        skipped_total.update(counts["skipped_by_reason"])
    stats = CorpusStats(
        kept_by_metre=dict(Counter(str(m.get("metre")) for m in index).most_common()),
        kept_by_mode=dict(Counter(str(m.get("mode")) for m in index).most_common()),
        quantised_tuplet_tunes=sum(1 for m in index if m.get("quantised_notes")),
        quantised_tuplet_notes=sum(int(m.get("quantised_notes", 0)) for m in index),
        parsed=sum(c["parsed"] for c in per_collection.values()),
        kept=sum(c["kept"] for c in per_collection.values()),
        skipped_by_reason=dict(sorted(skipped_total.items())),
        per_collection=per_collection,
        build_seconds=round(time.perf_counter() - started, 3),
        from_cache=False,
        music21_version=_music21_version(),
    )
    corpus = Corpus(tokens, offsets, split_array, index, stats, config)
    stats.tunes_per_split = {s: corpus.num_tunes(s) for s in SPLITS}
    stats.steps_per_split = {s: corpus.num_steps(s) for s in SPLITS}
    stats.skipped_examples = dict(sorted(skipped_examples.items()))
    stats.slowest_tunes = {k: round(s, 3) for s, k in slowest}
    return corpus


# ---------------------------------------------------------------------- cache
def _manifest(corpus: Corpus) -> dict[str, Any]:
    stats = corpus.stats.to_dict()
    stats.pop("from_cache")
    stats.pop("load_seconds")
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "cache_key": cache_key(corpus.config),
        "config": corpus.config.to_dict(),
        "music21_version": _music21_version(),
        "steps_per_bar": STEPS_PER_BAR,
        "stats": stats,
    }


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _save(corpus: Corpus, npz_path: Path, json_path: Path) -> None:
    manifest = _manifest(corpus)
    arrays = {
        "tokens": corpus.tokens.astype(np.int8),
        "offsets": corpus.offsets.astype(np.int64),
        "split_ids": corpus.split_ids.astype(np.int8),
        "index_json": np.array(json.dumps(corpus.index, ensure_ascii=False)),
        "manifest_json": np.array(json.dumps(manifest, sort_keys=True)),
    }
    _atomic_write(npz_path, lambda stream: np.savez_compressed(stream, **arrays))
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    _atomic_write(json_path, lambda stream: stream.write(text.encode("utf-8")))
    corpus.path = npz_path


def _load(npz_path: Path, config: CorpusConfig) -> Corpus:
    started = time.perf_counter()
    broken = (
        f"corpus cache {npz_path} is corrupt or unreadable; rebuild it with "
        "`rlcomposer corpus build --force` (build_corpus(..., force=True))"
    )
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            tokens = data["tokens"]
            offsets = data["offsets"]
            split_ids = data["split_ids"]
            index = json.loads(str(data["index_json"]))
            manifest = json.loads(str(data["manifest_json"]))
    except FileNotFoundError:
        raise
    except Exception as error:
        raise CorpusError(f"{broken} ({type(error).__name__}: {error})") from None
    n = len(index)
    consistent = (
        isinstance(manifest, dict)
        and manifest.get("format") == CACHE_FORMAT
        and tokens.dtype == np.int8
        and tokens.ndim == offsets.ndim == split_ids.ndim == 1
        and offsets.shape == (n + 1,)
        and split_ids.shape == (n,)
        and n > 0
        and offsets[0] == 0
        and offsets[-1] == tokens.size
        and bool(np.all(np.diff(offsets) > 0))
        and bool(np.all(split_ids < len(SPLITS)))
        and (tokens.size == 0 or (int(tokens.min()) >= 0 and int(tokens.max()) < VOCAB_SIZE))
    )
    if not consistent:
        raise CorpusError(f"{broken} (inconsistent arrays)")
    if manifest.get("version") != CACHE_VERSION:
        raise CorpusError(
            f"corpus cache {npz_path} has version {manifest.get('version')}, expected "
            f"{CACHE_VERSION}; rebuild it with `rlcomposer corpus build --force`"
        )
    stored = manifest.get("config")
    if not isinstance(stored, dict) or CorpusConfig.from_dict(stored).content_dict() != (
        config.content_dict()
    ):
        raise CorpusError(f"corpus cache {npz_path} was built with another config")
    stats = CorpusStats.from_dict(manifest.get("stats", {}))
    stats.from_cache = True
    stats.load_seconds = round(time.perf_counter() - started, 3)
    return Corpus(tokens, offsets, split_ids, index, stats, config, npz_path)


# ----------------------------------------------------------------------- API
def build_corpus(
    config: CorpusConfig,
    cache_dir: str | Path,
    *,
    force: bool = False,
    progress: bool = True,
) -> Corpus:
    """Parse the collections of ``config`` into ``cache_dir``, or read the cache.

    A cache built with the same content config (and music21 version) is read
    instead of parsing again unless ``force``. A corrupt cache raises
    :class:`CorpusError` naming the file; ``force=True`` rebuilds it.
    """
    npz_path, json_path = cache_paths(config, cache_dir)
    if not force and npz_path.exists():
        return _load(npz_path, config)
    try:  # a cache folder that cannot be written fails now, not after a minute of parsing
        npz_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CorpusError(f"corpus cache folder {npz_path.parent}: cannot create it "
                          f"({error.strerror or type(error).__name__})") from None
    corpus = _build(config, progress)
    if len(corpus) == 0:
        raise CorpusError(
            f"no tune of {list(config.collections)} could be kept "
            f"(skipped: {corpus.stats.skipped_by_reason})"
        )
    _save(corpus, npz_path, json_path)
    return corpus


def load_corpus(cache_dir: str | Path, config: CorpusConfig | None = None) -> Corpus:
    """Read a corpus built by :func:`build_corpus` (default config if ``config`` is None).

    Raises :class:`CorpusError` if there is no cache ("run `rlcomposer corpus
    build` first") or it is corrupt.
    """
    config = config or CorpusConfig()
    npz_path, _ = cache_paths(config, cache_dir)
    try:
        return _load(npz_path, config)
    except FileNotFoundError:
        raise CorpusError(
            f"no corpus cache {npz_path.name} in {Path(cache_dir)}; {_BUILD_COMMAND}"
        ) from None


def _music21_version() -> str:
    """music21's version without importing it (a cached load need not pay for that)."""
    from importlib import metadata

    try:
        return metadata.version("music21")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        import music21

        return str(music21.__version__)
