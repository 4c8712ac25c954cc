"""One real browser: Debian's chromium, headless, driven by Playwright, against the running app.

Signs in, rates 3 melodies and 2 pairs with clicks, then finds exactly those rows in
the database. Skipped when chromium or the playwright package is missing (CI
installs chromium in .ci/run; never `playwright install`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from rlcomposer.feedback import database
from rlcomposer.feedback.store import open_store
from rlcomposer.music.melody import random_melody

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SCREENSHOT = os.environ.get("RLCOMPOSER_SCREENSHOT")  # set to save the rating page as PNG

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'browser.sqlite3'}"
    store = open_store(url)
    rng = np.random.default_rng(7)
    store.add_melodies([random_melody(rng, 32) for _ in range(4)], "prior", model="prior")
    store.add_melodies([random_melody(rng, 32) for _ in range(3)], "tuned", model="tuned")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLCOMPOSER_")}
    env.update(RLCOMPOSER_DATABASE_URL=url, RLCOMPOSER_REPEAT_SHARE="0")
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "rlcomposer.cli", "app", "--db", url, "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--server.fileWatcherType", "none", "--global.developmentMode", "false"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"the app did not start:\n{(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", store
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()
        database.dispose_engine(url)


def test_sign_in_rate_three_melodies_and_two_pairs(app_server):
    base_url, store = app_server
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(base_url)
            page.get_by_label("Your rater name", exact=True).fill("Ann in Chromium")
            page.get_by_text("I agree that my ratings").click()
            page.get_by_role("button", name="Start rating").click()
            page.get_by_text("rated this session").wait_for()

            def wait_count(n: int) -> None:
                page.locator("[data-testid='stSidebar']").get_by_text(f"{n} rated this session").wait_for()

            def item_id(prefix: str) -> str:
                """The submission id of the item on screen, from its buttons' keys (st-key-<key>)."""
                container = page.locator(f"[class*='st-key-{prefix}']").first
                container.wait_for()
                return re.search(rf"st-key-{prefix}(\w+)", container.get_attribute("class")).group(1)

            def answer(prefix: str, label: str, done: int) -> None:
                # click on the item now on screen (never a stale button of the previous one)
                client_id = item_id(prefix)
                page.locator(f"[class*='{client_id}']").get_by_role("button", name=label, exact=True).click()
                page.locator(f"[class*='st-key-{prefix}{client_id}']").wait_for(state="detached")
                wait_count(done)

            wait_count(0)
            for done, stars in enumerate((5, 3, 1), start=1):
                page.locator("img[alt='score melody']").wait_for()
                answer(f"stars-{stars}-", f"{stars} " + "★" * stars, done)
            page.locator("img[alt='score melody']").wait_for()
            page.locator("audio").first.wait_for(state="attached")
            if SCREENSHOT:
                page.screenshot(path=SCREENSHOT, full_page=True)
            page.get_by_text("Two melodies (A or B)").click()
            page.locator("img[alt='score A']").wait_for()
            answer("pair-tie-", "A is better", 4)
            page.locator("img[alt='score B']").wait_for()
            if SCREENSHOT:
                page.screenshot(path=SCREENSHOT.replace(".png", "-pair.png"), full_page=True)
            answer("pair-tie-", "B is better", 5)
        finally:
            browser.close()

    rater = store.find_rater("Ann in Chromium")
    assert rater is not None and rater.consented
    ratings = [r for r in store.ratings() if r.rater_id == rater.id]
    assert [r.stars for r in ratings] == [5, 3, 1]
    assert len({r.melody_id for r in ratings}) == 3
    comparisons = [c for c in store.comparisons() if c.rater_id == rater.id]
    assert len(comparisons) == 2
    first, second = comparisons
    assert first.choice == first.shown_left                              # "A" = the left melody
    assert second.choice in ("a", "b") and second.choice != second.shown_left  # "B" = the right one
    assert store.counts() == {"raters": 1, "melodies": 7, "ratings": 3, "comparisons": 2}
