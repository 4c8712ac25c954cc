"""A whole study in one real browser: Debian's chromium, headless, driven by Playwright.

The organiser opens the organiser area (without becoming a rater) and creates the
study; a rater opens its address, consents, plays each melody (space), answers with
the keyboard, reloads half-way (still signed in, count kept), finishes and sees the
completion screen with its code; the organiser watches the progress and downloads
the answers. The database must then hold exactly the rater's answers, each with the
time listened.

``RLCOMPOSER_SCREENSHOTS=DIR`` saves every page at 1366 px and 390 px wide in DIR.
Skipped when chromium or the playwright package is missing (CI installs chromium in
.ci/run; never `playwright install`).
"""

from __future__ import annotations

import csv
import io
import os
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
from rlcomposer.feedback.study import get_study
from rlcomposer.music.melody import random_melody

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required"]
SCREENSHOTS = os.environ.get("RLCOMPOSER_SCREENSHOTS")  # a folder: save every page at 1366 and 390 px
PASSWORD = "organiser-secret"

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(url: str, folder: Path, **environment: str):
    """``rlcomposer app`` on ``url``; returns (process, base URL, log path)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLCOMPOSER_")}
    env.update(RLCOMPOSER_DATABASE_URL=url, **environment)
    log_path = folder / f"streamlit-{port}.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "rlcomposer.cli", "app", "--db", url, "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--server.fileWatcherType", "none", "--global.developmentMode", "false"],
        cwd=folder, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return server, f"http://127.0.0.1:{port}", log_path
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_app(server)
            raise RuntimeError(f"the app did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.3)


def stop_app(server) -> None:
    try:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, 9)
        server.wait()
    except ProcessLookupError:
        pass


@pytest.fixture
def app_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'browser.sqlite3'}"
    store = open_store(url)
    rng = np.random.default_rng(7)
    store.add_melodies([random_melody(rng, 32) for _ in range(5)], "prior", model="prior")
    store.add_melodies([random_melody(rng, 32) for _ in range(4)], "tuned", model="tuned")
    server, base_url, _ = start_app(url, tmp_path, RLCOMPOSER_ADMIN_PASSWORD=PASSWORD)
    try:
        yield base_url, store
    finally:
        stop_app(server)
        database.dispose_engine(url)


def shoot(page, name: str) -> None:
    """Save the page at 1366 px and at 390 px (a phone) when RLCOMPOSER_SCREENSHOTS is set."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)
    page.screenshot(path=str(folder / f"{name}-1366.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(600)
    page.screenshot(path=str(folder / f"{name}-390.png"), full_page=False)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.wait_for_timeout(300)


def progress(page) -> str:
    return page.locator("[class*='st-key-progress-bar']").inner_text()


def answer_item(page, key: str) -> str:
    """Play both melodies with the space bar, then answer with ``key``; returns the item's id."""
    left = page.locator("[class*='st-key-answer-left-']")
    left.wait_for()
    client_id = left.get_attribute("class").split("st-key-answer-left-")[1].split()[0]
    assert page.locator("[class*='st-key-answer-left-'] button").is_disabled()  # not played yet: closed
    players = [page.frame_locator("iframe[title*='listen_player']").nth(i) for i in range(2)]
    for player in players:  # both players loaded their melody
        player.locator(f"body[data-canplay='{client_id}']").wait_for(state="attached")
    for player in players:
        page.keyboard.press(" ")  # plays the first melody not heard yet
        player.locator("#status", has_text="listened").wait_for(timeout=30_000)
        player.locator("#play", has_text="Play").wait_for(timeout=30_000)  # played to its end
    page.locator(f"[class*='st-key-answer-left-{client_id}'] button:not([disabled])").wait_for()
    page.keyboard.press(key)
    page.locator(f"[class*='st-key-answer-left-{client_id}']").wait_for(state="detached")
    return client_id


def test_a_whole_study_as_organiser_and_rater(app_server):
    base_url, store = app_server
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            # ---- the organiser creates the study, without becoming a rater
            organiser = browser.new_page(viewport={"width": 1366, "height": 900})
            organiser.set_default_timeout(60_000)
            organiser.goto(f"{base_url}/?area=organiser")
            organiser.get_by_label("Organiser password").fill(PASSWORD)
            organiser.get_by_role("button", name="Open the organiser area").click()
            organiser.get_by_text("Create a study").wait_for()
            # no study yet: the form is open (the organiser area makes no default study of its own)
            organiser.get_by_label("Name (used in the address)").wait_for()
            organiser.get_by_label("Name (used in the address)").fill("spring")
            organiser.get_by_label("Items per rater").fill("4")
            organiser.get_by_label("Completion code (optional)").fill("SPRING-7")
            shoot(organiser, "organiser-create")
            organiser.get_by_role("button", name="Create the study").click()
            organiser.get_by_text("Study spring created").wait_for()
            assert store.raters() == []
            # a shorter listening requirement than the default (the whole melody), as a study setting
            store.update_study("spring", listen_fraction=0.3)

            # ---- a rater takes the study
            rater = browser.new_page(viewport={"width": 1366, "height": 900})
            rater.set_default_timeout(60_000)
            rater.goto(f"{base_url}/?study=spring")
            rater.get_by_label("Your rater name", exact=True).wait_for()
            shoot(rater, "rater-sign-in")
            rater.get_by_label("Your rater name", exact=True).fill("Keyboard Kim")
            rater.get_by_text("I agree that my answers").click()
            rater.get_by_role("button", name="Start rating").click()
            rater.get_by_text("0 of 4").wait_for()
            assert "token=" in rater.url
            shoot(rater, "rater-pair")
            seen = [answer_item(rater, "a")]
            rater.get_by_text("1 of 4").wait_for()
            seen.append(answer_item(rater, "b"))
            rater.get_by_text("2 of 4").wait_for()

            rater.reload()  # half-way: still signed in, count kept
            rater.get_by_text("2 of 4").wait_for()
            assert rater.get_by_label("Your rater name", exact=True).count() == 0
            seen.append(answer_item(rater, "="))
            rater.get_by_text("3 of 4").wait_for()
            rater.get_by_role("radio", name="My answers").or_(rater.get_by_text("My answers", exact=True)).first.click()
            rater.locator("[data-testid='stDataFrame']").wait_for()
            rater.get_by_text("B (right)").first.wait_for(state="attached")  # what the rater clicked
            shoot(rater, "rater-my-answers")
            rater.get_by_text("Rate", exact=True).first.click()
            seen.append(answer_item(rater, "a"))
            rater.get_by_text("Thank you!").wait_for()
            rater.get_by_text("SPRING-7").wait_for()
            shoot(rater, "rater-complete")

            # ---- the organiser watches the progress and downloads the answers
            organiser.reload()
            organiser.get_by_label("Organiser password").fill(PASSWORD)
            organiser.get_by_role("button", name="Open the organiser area").click()
            # the metric, not the studies table's hidden "completed" column header
            organiser.locator("[data-testid='stMetric']", has_text="Completed").first.wait_for()
            organiser.locator("[data-testid='stMetric']", has_text="Completed").get_by_text("1 of 1").wait_for()
            shoot(organiser, "organiser-studies")
            organiser.get_by_role("tab", name="Dashboard").click()
            organiser.get_by_text("95% interval").first.wait_for()
            shoot(organiser, "organiser-dashboard")
            with organiser.expect_download() as download:
                organiser.get_by_role("button", name="CSV", exact=True).click()
            exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        finally:
            browser.close()

    study = get_study(store, "spring")
    kim = store.find_rater("keyboard kim")
    assert kim is not None and kim.consented and len(store.raters()) == 1  # the organiser is no rater
    comparisons = [c for c in store.comparisons() if c.rater_id == kim.id]
    assert sorted(c.client_id for c in comparisons) == sorted(seen)  # each answer once, none lost
    assert all(c.study_id == study.id for c in comparisons)
    first, second, third, fourth = sorted(comparisons, key=lambda c: c.id)
    assert first.choice == first.shown_left  # key A = the melody on the left
    assert second.choice in ("a", "b") and second.choice != second.shown_left  # key B = the right one
    assert third.choice == "tie"
    assert all(c.listened_ms and c.listened_ms > 0 for c in comparisons)  # listening is part of the answer
    assert [r["client_id"] for r in exported if r["kind"] == "comparison"] == [c.client_id for c in
                                                                             sorted(comparisons, key=lambda c: c.id)]
