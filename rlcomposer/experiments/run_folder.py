"""An experiment's run folder before it runs: whose it is, and what a refused start leaves (nothing).

``experiment run`` into ``runs/NAME/`` is checked by :func:`check_experiment_target`
before anything is written: a name that cannot be a folder or a pool tag is
refused; a folder that holds a run with *other* settings (or files that are no
run) is refused unless ``--overwrite`` (``experiment resume`` continues a run
as it was set up); the same settings continue the run, as before.
:func:`removed_if_refused` takes away a folder that a refused start created.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlcomposer.config import config_to_dict, shown_value
from rlcomposer.errors import RLComposerError
from rlcomposer.experiments.loop import STATE_FILE, ExperimentConfig, read_run_state, resume_config

MAX_NAME_BYTES = 200
"""Longest experiment name, in UTF-8 bytes (a folder name has at most 255; the tags add ``/round-K``)."""


def check_experiment_name(config: ExperimentConfig) -> None:
    """Refuse a name that cannot be a folder, or whose rounds' pool tags the rating store refuses."""
    from rlcomposer.feedback.store import check_tag

    if len(config.name.encode("utf-8", errors="replace")) > MAX_NAME_BYTES:
        raise RLComposerError(f"experiment name {shown_value(config.name)} is longer than "
                              f"{MAX_NAME_BYTES} bytes")
    if config.name in (".", "..") or "\\" in config.name or "\x00" in config.name:
        raise RLComposerError(f"experiment name {shown_value(config.name)} must be a plain folder name")
    try:
        check_tag(config.tag(config.rounds))  # the longest tag the run makes
    except RLComposerError:
        raise RLComposerError(f"experiment name {shown_value(config.name)} cannot name the pool tags "
                              f"(NAME/round-K): use printable characters, no leading or trailing "
                              "spaces") from None


def _first_difference(old: Any, new: Any, key: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for name in [*old, *(k for k in new if k not in old)]:
            found = _first_difference(old.get(name), new.get(name), f"{key}.{name}" if key else str(name))
            if found is not None:
                return found
        return None
    return None if old == new else (key, old, new)


def check_experiment_target(run_dir: str | Path, config: ExperimentConfig, overwrite: bool) -> None:
    """Refuse to start ``config`` in ``run_dir`` when it would change or mix with what is there.

    An empty or missing folder is fine, so is a run of the same settings (it
    continues); with ``overwrite`` anything is (:func:`~rlcomposer.rl.run_folder.replacing_run`
    replaces it). Else one line naming the folder, the first setting that differs
    and the ways out.
    """
    check_experiment_name(config)
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RLComposerError(f"run folder '{run_dir}' exists and is not a folder")
    if overwrite or not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    ways_out = (f"continue it with `rlcomposer experiment resume {run_dir}`, choose another name "
                "(--set name=...), or pass --overwrite to replace it")
    if not (run_dir / "config.yaml").is_file():
        raise RLComposerError(f"run folder '{run_dir}' holds files but no experiment run (no config.yaml): "
                              "choose another name (--set name=...) or --runs-dir, or pass --overwrite to "
                              "replace it")
    try:
        old = config_to_dict(resume_config(run_dir))
    except RLComposerError as error:
        raise RLComposerError(f"run folder '{run_dir}' holds a run whose config.yaml cannot be read "
                              f"({error}): pass --overwrite to replace it") from None
    difference = _first_difference(old, config_to_dict(config))
    if difference is not None:
        key, before, now = difference
        state = read_run_state(run_dir) if (run_dir / STATE_FILE).is_file() else {"round": 0}
        done = f", {state['round']} of {old.get('rounds')} rounds done" if state.get("round") else ""
        raise RLComposerError(f"run folder '{run_dir}' holds a run with other settings ({key}: "
                              f"{shown_value(before)} there, {shown_value(now)} now{done}): {ways_out}")


@contextmanager
def removed_if_refused(run_dir: str | Path) -> Iterator[None]:
    """Around starting a run in ``run_dir``: a folder this start created is removed if the start
    is refused (an :class:`RLComposerError`) before it finished a round, so a refused listener,
    tag or setting leaves nothing behind. Interruptions and finished rounds keep their folder."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        yield
    except RLComposerError:
        if created and run_dir.is_dir():
            try:
                unfinished = read_run_state(run_dir)["round"] == 0
            except RLComposerError:
                unfinished = True
            if unfinished:
                shutil.rmtree(run_dir, ignore_errors=True)
        raise
