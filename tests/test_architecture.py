"""Import direction: the import-linter contracts in ``pyproject.toml`` hold.

``lint-imports`` checks every import statement, those inside functions too: each stage of
``rlcomposer`` imports only the stages below it, and the library never imports the rating app.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rlcomposer"


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), f"{lint_imports} is missing: `make setup` installs import-linter"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"lint-imports failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    )


def _imported_names(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in a module, relative ones resolved."""
    names = []
    package_parts = module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names.append((node.lineno, stem))
            names.extend((node.lineno, f"{stem}.{alias.name}") for alias in node.names)
    return names


def test_no_import_of_the_app_through_the_package_link():
    """``rlcomposer/_feedback_app`` links to ``feedback_app/`` for the wheel; import-linter does
    not walk a linked folder, so an import by that name would pass its contract unseen."""
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[1] == "_feedback_app":
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.append("__init__")  # so that relative imports resolve from the package itself
        module = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in _imported_names(tree, module):
            if name == "rlcomposer._feedback_app" or name.startswith("rlcomposer._feedback_app."):
                offending.append(f"{relative}:{line} imports {name}")
    assert not offending, "rlcomposer imports the rating app:\n" + "\n".join(offending)
