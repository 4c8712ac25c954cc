"""A tuning run's folder: what a run made, and what a failed run leaves behind.

A run writes its final artefacts (the policy's ``model.pt``, ``config.json``,
``metrics.json``, ``tune_config.json``, the plots) atomically: a temporary file,
then a rename, so the folder never holds a half-written one. Its logs
(``history.jsonl``, ``tb/``) and ``checkpoints/`` grow while it trains, and
stay when it fails after its first checkpoint, so that ``tune --resume``
continues from there. A run that fails *before* its first checkpoint leaves
nothing: :meth:`RunFolder.clean_up_after_failure` removes what it made (the
whole folder if the run created it).

A folder that already holds a run is another run's: :func:`check_run_target`
refuses it unless the run resumes there (``--resume``) or replaces it
(``--overwrite``), and :func:`replacing_run` replaces it only when the new run
has written something: until then the old run waits in a hidden sibling folder
and comes back if the new one fails first.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlcomposer.errors import RLComposerError

CHECKPOINTS = "checkpoints"


def folder_entries(path: str | Path) -> list[str]:
    """The names in the folder ``path``, sorted ([] when it is missing or empty)."""
    path = Path(path)
    return sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []


def check_run_target(path: str | Path, overwrite: bool, resume: bool, flag: str = "--out") -> None:
    """Refuse ``path`` when it is a file, or a folder that holds files and the run neither resumes
    there nor replaces it (one line naming the folder and what it holds)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RLComposerError(f"{flag} '{path}' exists and is not a directory")
    if overwrite and resume:
        raise RLComposerError("--overwrite and --resume contradict each other: --resume continues the run "
                              f"in {flag}, --overwrite replaces it")
    held = folder_entries(path)
    if held and not overwrite and not resume:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise RLComposerError(f"{flag} '{path}' already holds a run ({shown}): choose another folder, "
                              "continue it with --resume CHECKPOINT, or pass --overwrite to replace it")


@contextmanager
def replacing_run(path: str | Path, overwrite: bool) -> Iterator[None]:
    """Around a run into ``path``: with ``overwrite``, the run that is there moves aside to a hidden
    sibling folder; it is deleted when the block ends, or when the block fails after writing
    something into ``path`` (a resumable run), and comes back when the block fails having left
    nothing (a refused input, a failure before the first checkpoint)."""
    path = Path(path)
    if not overwrite or not folder_entries(path):
        yield
        return
    aside = path.resolve().with_name(f".{path.resolve().name}.replaced-{os.getpid()}")
    path.rename(aside)
    try:
        yield
    except BaseException:
        if folder_entries(path):
            shutil.rmtree(aside, ignore_errors=True)
        else:
            if path.is_dir():
                path.rmdir()
            aside.rename(path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


class RunFolder:
    """The output folder of one ``tune`` run; remembers which files and folders the run created."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.existed = self.path.exists()
        self._made: list[Path] = []
        self._checkpoints_before = set(self.checkpoints())

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def make_file(self, name: str) -> Path:
        """``path / name``; remembered as the run's own if it did not exist yet."""
        target = self.path / name
        if not target.exists():
            self._made.append(target)
        return target

    def make_dir(self, name: str) -> Path:
        target = self.make_file(name)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def checkpoints(self) -> list[Path]:
        """Training-state zips in ``checkpoints/``, oldest step first (``final.zip`` last)."""
        folder = self.path / CHECKPOINTS
        if not folder.is_dir():
            return []

        def step(path: Path) -> float:
            digits = "".join(c for c in path.stem.split("_")[-2] if c.isdigit()) if "_" in path.stem else ""
            return float(digits) if digits else float("inf")

        return sorted((p for p in folder.glob("*.zip") if not p.name.startswith(".")), key=step)

    def clean_up_after_failure(self) -> str:
        """Remove what a failed run made unless it wrote a checkpoint; say what is left (or "")."""
        for partial in self.path.glob("**/.*.partial*") if self.path.is_dir() else []:
            partial.unlink(missing_ok=True)
        new_checkpoints = [p for p in self.checkpoints() if p not in self._checkpoints_before]
        if new_checkpoints or self._checkpoints_before:
            latest = (new_checkpoints or self.checkpoints())[-1]
            return (f"{self.path} keeps its logs and checkpoints; continue with --resume {latest}")
        if not self.existed:
            shutil.rmtree(self.path, ignore_errors=True)
            return ""
        for made in reversed(self._made):
            if made.is_dir():
                shutil.rmtree(made, ignore_errors=True)
            else:
                made.unlink(missing_ok=True)
        return ""
