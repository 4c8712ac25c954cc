"""``rlcomposer app``: the Streamlit rating app in the browser, on the database (migrated first).

Options this command does not know pass through to ``streamlit run``
(e.g. ``--server.port 8502``).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from rlcomposer.cli.common import Commands, add_db_option, resolve_db
from rlcomposer.errors import RLComposerError

APP_PACKAGE = "feedback_app"
"""The import name of the top-level ``feedback_app/`` folder (pyproject.toml maps it)."""
APP_ENTRY = "app.py"


def app_script() -> Path:
    """The Streamlit entry script ``feedback_app/app.py``, found by the folder's import name
    :data:`APP_PACKAGE` (located, never imported: importing it would run the app)."""
    spec = importlib.util.find_spec(APP_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / APP_ENTRY).is_file():
            return Path(location) / APP_ENTRY
    raise RLComposerError(f"the rating app ({APP_PACKAGE}) is missing from the installation: reinstall rlcomposer")


def cmd_app(args: argparse.Namespace) -> None:
    from rlcomposer.feedback.database import ENV_DATABASE_URL, ensure_migrated

    url = resolve_db(args)
    ensure_migrated(url)  # a database that is down fails here, with one line
    streamlit_args = list(getattr(args, "streamlit_args", []) or [])
    for option, value in (("--browser.gatherUsageStats", "false"), ("--client.toolbarMode", "viewer")):
        if not any(a.startswith(option) for a in streamlit_args):
            streamlit_args += [option, value]
    env = dict(os.environ, **{ENV_DATABASE_URL: url})
    command = [sys.executable, "-m", "streamlit", "run", str(app_script()), *streamlit_args]
    code = run_forwarding_signals(command, env)
    if code not in (0, -2, -15, 130, 143):
        raise RLComposerError(f"streamlit stopped with status {code}")


FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when this process dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def run_forwarding_signals(command: list[str], env: dict[str, str], grace_seconds: float = 20.0) -> int:
    """Run ``command`` and wait for it; SIGTERM, SIGINT and SIGHUP sent to this process are
    passed on to it (and it is killed if it has not stopped ``grace_seconds`` later), so
    stopping ``rlcomposer app`` stops the server. Returns its exit status."""
    child = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    received: list[int] = []

    def forward(signum, _frame) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    try:
        while True:
            try:
                return child.wait(timeout=None if not received else grace_seconds)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()
            except KeyboardInterrupt:  # a terminal's Ctrl-C also reached the child (same process group)
                received.append(signal.SIGINT)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _PassThroughParser(argparse.ArgumentParser):
    """Keeps options it does not know (Streamlit's own, e.g. ``--server.port 8502``)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.streamlit_args = list(getattr(namespace, "streamlit_args", None) or []) + extras
        return namespace, []


def register(commands: Commands) -> None:
    """Add ``app``."""
    app = commands.add_parser(
        "app", help="the rating app in the browser (Streamlit options pass through, e.g. --server.port 8502)",
        description="Start the Streamlit rating app on the database (migrated first). Options "
                    "this command does not know go to `streamlit run`, e.g. --server.port 8502 "
                    "--server.headless true. The app reads RLCOMPOSER_ACCESS_CODE (raters' shared "
                    "access code) and RLCOMPOSER_ADMIN_PASSWORD (the dashboard) from the environment.")
    app.__class__ = _PassThroughParser  # add_parser builds the class of the group; this one keeps unknown options
    add_db_option(app, help="database URL or SQLite file (default: $RLCOMPOSER_DATABASE_URL or the default file)")
    app.set_defaults(handler=cmd_app, streamlit_args=[])
