"""Import direction: the import-linter contracts in ``pyproject.toml`` hold.

``lint-imports`` checks every import statement, those inside functions too: each stage of
``rlcomposer`` imports only the stages below it, the modules of a subpackage import one another
without a cycle, and the library never imports the rating app.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
