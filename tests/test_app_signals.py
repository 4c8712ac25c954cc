"""Stopping ``rlcomposer app`` stops the Streamlit server it started (the port is freed)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_signal_to_the_app_command_stops_the_server(tmp_path, signum):
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "rlcomposer.cli", "app", "--db", str(tmp_path / "s.sqlite3"),
                            "--server.port", str(port), "--server.address", "127.0.0.1",
                            "--server.headless", "true", "--server.fileWatcherType", "none"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not serving(port):
            assert app.poll() is None and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.2)
        app.send_signal(signum)
        app.wait(timeout=30)
        deadline = time.monotonic() + 10
        while serving(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not serving(port), f"streamlit still serves port {port} after {signum.name} to `rlcomposer app`"
    finally:
        if app.poll() is None:
            app.kill()
