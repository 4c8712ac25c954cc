"""The wheel carries and runs the rating app and the migrations, which live at the top of the checkout.

``pip wheel .`` packs ``feedback_app/`` (as ``feedback_app`` and ``feedback_ui``) and ``alembic/`` (as
``rlcomposer_migrations``) through the package-dir mapping in ``pyproject.toml``: no links, no path
fallbacks. Run from the unpacked wheel alone, ``rlcomposer db upgrade`` builds the rating tables and
``rlcomposer app`` finds the app's entry script inside it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--quiet", "--wheel-dir", str(out / "dist")],
        capture_output=True, text=True, timeout=300, cwd=out)
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout}\n{build.stderr}"
    (wheel,) = (out / "dist").glob("rlcomposer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(out / "site")
    return out / "site"


def test_the_wheel_holds_every_subpackage_the_app_and_the_migrations(unpacked_wheel):
    packed = {p.relative_to(unpacked_wheel).as_posix() for p in unpacked_wheel.rglob("*") if p.is_file()}
    for package in sorted(p.parent for p in (ROOT / "rlcomposer").rglob("__init__.py")):
        assert f"{package.relative_to(ROOT).as_posix()}/__init__.py" in packed, f"{package.name} is not in the wheel"
    app = {f"feedback_app/{p.relative_to(ROOT / 'feedback_app').as_posix()}"
           for p in (ROOT / "feedback_app").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    app = {name.replace("feedback_app/feedback_ui/", "feedback_ui/") for name in app}
    assert app and app <= packed, f"app files missing from the wheel: {sorted(app - packed)}"
    migrations = {f"rlcomposer_migrations/{p.relative_to(ROOT / 'alembic').as_posix()}"
                  for p in (ROOT / "alembic").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert "rlcomposer_migrations/script.py.mako" in migrations
    assert migrations <= packed, f"migrations missing from the wheel: {sorted(migrations - packed)}"
    assert not [name for name in packed if "_feedback_app" in name or "/_migrations" in name]
    assert "rlcomposer/data/style_reference.json" in packed and any(n.startswith("rlcomposer/data/prior/") for n in packed)


def test_the_unpacked_wheel_upgrades_a_database_and_finds_the_app(unpacked_wheel, tmp_path):
    database = tmp_path / "ratings.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel)}
    env.pop("RLCOMPOSER_DATABASE_URL", None)
    upgrade = subprocess.run(
        [sys.executable, "-m", "rlcomposer.cli", "db", "upgrade", "--db", f"sqlite:///{database}", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert upgrade.returncode == 0, f"db upgrade failed:\n{upgrade.stdout}\n{upgrade.stderr}"
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"raters", "melodies", "comparisons", "alembic_version"} <= tables
    where = subprocess.run(
        [sys.executable, "-c", "import json, rlcomposer; from rlcomposer.cli.app import app_script; "
         "from rlcomposer.feedback.database import migrations_dir; "
         "print(json.dumps([rlcomposer.__file__, str(app_script()), str(migrations_dir())]))"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr
    package, app, migrations = (Path(p) for p in json.loads(where.stdout))
    for path in (package, app, migrations):
        assert path.is_relative_to(unpacked_wheel), f"{path} is not the wheel's"
    assert app.name == "app.py" and (app.parent.parent / "feedback_ui" / "main.py").is_file()
    assert (migrations / "env.py").is_file() and list((migrations / "versions").glob("0001_*.py"))


def test_the_editable_checkout_finds_the_app_and_the_migrations_at_the_top():
    from rlcomposer.cli.app import app_script
    from rlcomposer.feedback.database import migrations_dir

    assert app_script() == ROOT / "feedback_app" / "app.py"
    assert migrations_dir() == ROOT / "alembic"
