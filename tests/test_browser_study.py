"""A listening study people finish with honest answers (issue 18), in Debian's chromium, headless.

One app, one pairs study of melodies that end in 1.5 s of rest, the whole melody to be
heard (``listen_fraction 1``):

* two players never sound together: starting B pauses A, and a melody forced to play
  beside another gains no listening time;
* a reload mid-item keeps the pair on screen and what had played of it;
* a key pressed the moment the last melody is heard answers (no silent drop);
* the answers open once each melody played to its last note, before its trailing rests;
* on a phone (390x844, touch) both answer buttons and both players are on screen without
  scrolling, no keyboard hints are shown, and the title is not under the toolbar.

``RLCOMPOSER_SCREENSHOTS=DIR`` keeps the phone screenshot in DIR (else in the test's
temporary folder). Skipped when chromium or the playwright package is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app

from rlcomposer.feedback import database
from rlcomposer.feedback.store import open_store
from rlcomposer.feedback.study import StudySpec, create_study, get_study
from rlcomposer.music.melody import Melody

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")
SOUNDING_S = 2.5
"""Each melody: five one-beat notes at 120 bpm (2.5 s), then three beats of rest (1.5 s)."""


def trailing_rest_melody(index: int) -> Melody:
    pitches = [60 + (index * 3 + k * (index % 4 + 1)) % 14 for k in range(5)]
    return Melody.from_notes([(p, float(beat), 1.0) for beat, p in enumerate(pitches)], num_steps=32)


@pytest.fixture
def study_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    store = open_store(url)
    store.add_melodies([trailing_rest_melody(i) for i in range(10)], "prior", model="prior")
    create_study(store, StudySpec(name="honest", pool_tags=("prior",), items_per_rater=6, listen_fraction=1.0,
                                  repeat_share=0.0))
    server, base_url, _ = start_app(url, tmp_path)
    try:
        yield base_url, store
    finally:
        stop_app(server)
        database.dispose_engine(url)


def players(page):
    handles = page.locator("iframe[title*='listen_player']")
    handles.nth(1).wait_for()
    return [handles.nth(i).element_handle().content_frame() for i in range(2)]


def item_id(page) -> str:
    left = page.locator("[class*='st-key-answer-left-']")
    left.wait_for()
    return left.get_attribute("class").split("st-key-answer-left-")[1].split()[0]


def loaded(page) -> tuple[str, list]:
    client_id = item_id(page)
    frames = players(page)
    for frame in frames:
        frame.locator(f"body[data-canplay='{client_id}']").wait_for(state="attached")
    return client_id, frames


def paused(frame) -> bool:
    return frame.evaluate("document.getElementById('audio').paused")


def played(frame) -> int:
    return int(frame.evaluate("Number(document.body.dataset.played || 0)"))


def sign_in(page, base_url: str, name: str) -> None:
    page.goto(f"{base_url}/?study=honest")
    page.get_by_label("Your rater name", exact=True).fill(name)
    page.get_by_text("I agree that my answers").click()
    page.get_by_role("button", name="Start rating").click()
    page.get_by_text("0 of 6").wait_for()


def test_one_player_at_a_time_a_reload_keeps_the_pair_keys_answer_at_once_and_rests_are_not_waited_for(
        study_server, tmp_path):
    base_url, store = study_server
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.set_default_timeout(60_000)
            sign_in(page, base_url, "Honest Hal")

            # ---- A, then B: B's start pauses A; only time heard alone counts
            first, (a, b) = loaded(page)
            folder = Path(os.environ.get("RLCOMPOSER_SCREENSHOTS") or tmp_path)
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / "desktop-pair-1366.png"))
            a.locator("#play").click()
            page.wait_for_timeout(900)
            b.locator("#play").click()
            page.wait_for_timeout(400)
            assert paused(a) and not paused(b)  # one player at a time
            a_alone = played(a)
            assert 500 <= a_alone <= 1500
            a.evaluate("document.getElementById('audio').play()")  # forced: both sound together
            page.wait_for_timeout(800)
            assert not paused(a) and not paused(b)
            a_during, b_during = played(a), played(b)
            page.wait_for_timeout(800)
            assert played(a) - a_during < 150 and played(b) - b_during < 150  # overlap is not listening
            b.evaluate("document.getElementById('audio').pause()")
            page.wait_for_timeout(700)  # A alone again: it counts again
            assert played(a) > a_during + 300
            a.evaluate("document.getElementById('audio').pause()")
            page.wait_for_timeout(600)  # the pause reports what played

            # ---- a reload mid-item keeps the pair and its listening
            kept_a = played(a)
            page.reload()
            assert item_id(page) == first
            _, (a, b) = loaded(page)
            assert played(a) >= kept_a - 50 and played(a) > 0
            assert page.locator(f"[class*='st-key-answer-left-{first}'] button").is_disabled()

            # ---- up to the last note, then a key the moment it is heard
            for frame in (a, b):
                if "listened" not in frame.locator("#status").inner_text():
                    frame.locator("#play").click()
                    frame.locator("#status", has_text="listened").wait_for(timeout=20_000)
                    # heard at the last note's end (2.5 s in): the 1.5 s of trailing rest still play
                    position, length = frame.evaluate(
                        "[document.getElementById('audio').currentTime, document.getElementById('audio').duration]")
                    assert position < SOUNDING_S + 0.9 and length >= 3.9 and not paused(frame), (position, length)
            page.keyboard.press("b")  # at once, before the page has opened the buttons
            page.locator(f"[class*='st-key-answer-left-{first}']").wait_for(state="detached", timeout=10_000)
            page.get_by_text("1 of 6").wait_for()
            [answer] = store.comparisons()
            assert answer.client_id == first and answer.choice in ("a", "b") and answer.choice != answer.shown_left
            # what counted: A's time alone (before and after the overlap) plus B's, nothing twice
            assert 2 * SOUNDING_S * 1000 - 700 <= answer.listened_ms <= 2 * 4000 + 500

            # ---- the next item: a melody of the last pair does not come back at once
            second, _ = loaded(page)
            assert second != first

            # ---- a phone: both answers and both players on screen without scrolling, no key hints
            phone = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                        device_scale_factor=2)
            mobile = phone.new_page()
            mobile.set_default_timeout(60_000)
            sign_in(mobile, base_url, "Phone Pat")
            loaded(mobile)
            mobile.wait_for_timeout(800)
            for selector in ("[class*='st-key-answer-left-'] button", "[class*='st-key-answer-right-'] button"):
                box = mobile.locator(selector).bounding_box()
                assert box and box["y"] >= 0 and box["y"] + box["height"] <= 844, (selector, box)
            for i in range(2):
                box = mobile.locator("iframe[title*='listen_player']").nth(i).bounding_box()
                assert box and box["y"] >= 0 and box["y"] + box["height"] <= 844, ("player", i, box)
            title = mobile.get_by_role("heading", name="honest").bounding_box()
            assert title and title["y"] >= 0
            assert not mobile.locator(".rlc-keys").first.is_visible()
            mobile.screenshot(path=str(folder / "phone-pair-390.png"))
            phone.close()
        finally:
            browser.close()
    assert get_study(store, "honest").is_open


def test_answers_queued_during_an_outage_survive_a_reload(study_server):
    """The database goes away; the rater answers and reloads: the answer is still kept (in the
    browser) and is stored once when the database is back."""
    base_url, store = study_server
    path = Path(database.sqlite_path(store.url))
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.set_default_timeout(60_000)
            sign_in(page, base_url, "Outage Olga")
            client_id, frames = loaded(page)
            for frame in frames:
                page.keyboard.press(" ")  # plays the first melody not heard yet
                frame.locator("#status", has_text="listened").wait_for(timeout=20_000)
                frame.locator("#play", has_text="Play").wait_for(timeout=20_000)
            page.locator(f"[class*='st-key-answer-left-{client_id}'] button:not([disabled])").wait_for()
            path.rename(path.with_suffix(".away"))  # the database is gone
            try:
                page.keyboard.press("a")
                page.get_by_text("not saved yet").wait_for()
                page.reload()
                page.get_by_text("not saved yet").wait_for()  # kept in the browser across the reload
                shown = page.locator("[data-testid='stAlert']").first.inner_text()
                assert path.name not in shown and "sqlite" not in shown  # no database address for raters
            finally:
                path.with_suffix(".away").rename(path)
            page.get_by_role("button", name="Send again").click()
            page.get_by_text("1 of 6").wait_for()
        finally:
            browser.close()
    [answer] = store.comparisons()
    assert answer.client_id == client_id and answer.choice == answer.shown_left and answer.listened_ms > 4000
