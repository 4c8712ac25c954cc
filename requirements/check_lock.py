"""Check that the installed rlcomposer[dev,sweep] stayed inside the lock (``requirements/constraints.txt``).

Every distribution that rlcomposer and its dev extra need, directly or not, must be pinned in the
lock and installed at that version (a local label such as ``+cpu`` aside). A dependency added to
``pyproject.toml`` without ``make lock`` fails here. Run with the venv's python: CI does.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

LOCK = Path(__file__).resolve().parent / "constraints.txt"
PROJECT = "rlcomposer"
EXTRAS = {"dev", "sweep"}  # what `make setup` installs: `.[dev,sweep]`


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise SystemExit(f"{LOCK.name}: not a pin: {line!r}")
            pins[_name(name)] = version.strip()
    return pins


def _needed() -> set[str]:
    """Names of every distribution that PROJECT[EXTRAS] needs here (markers evaluated)."""
    needed: set[str] = set()
    todo = [(PROJECT, frozenset(EXTRAS))]
    seen = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            dependency = _name(requirement.name)
            needed.add(dependency)
            todo.append((dependency, frozenset(requirement.extras)))
    return needed


def main() -> int:
    pins = _pins()
    problems = []
    for name in sorted(_needed()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: needed but not installed")
            continue
        if name not in pins:
            problems.append(f"{name}=={installed}: installed but not pinned in the lock")
        elif installed.split("+", 1)[0] != pins[name]:
            problems.append(f"{name}=={installed}: the lock pins {pins[name]}")
    if problems:
        print(f"{LOCK.name} does not match pyproject.toml; run `make lock`:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"{LOCK.name}: all {len(pins)} pins cover the installed {PROJECT}[{','.join(sorted(EXTRAS))}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
