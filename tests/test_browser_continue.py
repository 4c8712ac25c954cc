"""The "Continue my tune" page in a real browser (Debian's chromium, headless, Playwright).

A rater signs in, opens "Continue my tune", pastes an ABC opening (4/4, 3/4 and 6/8), gets four
continuations (each with its player, score and piano roll), picks one, and the database then
holds three comparisons of that rater, the pick preferred over each of the others, under the
rater's tag ``composed:<name>``. A malformed opening shows one line and stores nothing.

``RLCOMPOSER_SCREENSHOTS=DIR`` saves the page with its continuations at desktop (1280x800) and
phone (390x844) size in DIR (else in the test's temporary folder). Skipped when chromium or the
playwright package is missing (CI installs chromium).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app

from rlcomposer.feedback import database
from rlcomposer.feedback.store import open_store
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.labels import load_training_data

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")

OPENINGS = {
    "4-4": "X:1\nT:Reel opening\nM:4/4\nL:1/8\nK:G\nD2 | G2B2 d2B2 | c2A2 F2D2 |",
    "3-4": "X:1\nT:Waltz opening\nM:3/4\nL:1/8\nK:D\nA2 | d2 f2 a2 | g2 e2 c2 |",
    "6-8": "X:1\nT:Jig opening\nM:6/8\nL:1/8\nK:Ador\ne | A2B c2d | e2f g2a |",
}


@pytest.fixture
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'compose.sqlite3'}"
    store = open_store(url)
    store.add_melodies([Melody([14 + k, 1, 1, 1] * 4) for k in range(4)], "prior", model="prior")
    server, base_url, _ = start_app(url, tmp_path)
    try:
        yield base_url, store
    finally:
        stop_app(server)
        database.dispose_engine(url)


def open_continue_page(page, base_url: str, name: str) -> None:
    page.goto(base_url)
    page.get_by_label("Your rater name", exact=True).fill(name)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start rating").click()
    page.get_by_text(f"Signed in as {name}").wait_for()
    page.get_by_role("radio", name="Continue my tune").or_(page.get_by_text("Continue my tune", exact=True)).first.click()
    page.get_by_label("Your opening (ABC)").wait_for()


def continue_opening(page, text: str, bars: int = 4) -> None:
    page.get_by_label("Your opening (ABC)").fill(text)
    bars_box = page.get_by_label("Length of the whole tune in bars (your opening included)")
    bars_box.fill(str(bars))
    bars_box.press("Enter")
    page.locator(".st-key-compose-go button").click()


@pytest.mark.parametrize("metre", ["4-4", *(pytest.param(m, marks=pytest.mark.slow) for m in OPENINGS if m != "4-4")])
def test_a_rater_continues_an_opening_and_the_pick_is_stored_as_three_comparisons(app, tmp_path, metre):
    base_url, store = app
    folder = Path(os.environ.get("RLCOMPOSER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"Composer {metre}"
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(45_000)
            open_continue_page(page, base_url, name)

            # ---- a malformed opening: one line, nothing stored
            continue_opening(page, "X:1\nM:4/4\nL:1/8\nK:Hmaj\nCDEF GABc |")
            error = page.get_by_text("K:Hmaj is not a key")
            error.wait_for()
            assert "\n" not in error.inner_text().strip()
            assert store.tags() == [("prior", 4)] and store.comparisons() == []

            # ---- the opening: four continuations, each with its player, score and piano roll
            continue_opening(page, OPENINGS[metre])
            page.locator(".st-key-continuation-4 img[alt^='score']").wait_for()
            page.locator("img[alt^='piano roll continuation-']").nth(3).wait_for()  # the last to render, under load
            assert page.locator("iframe[title*='listen_player']").count() == 4
            assert page.locator("img[alt^='piano roll continuation-']").count() == 4
            assert page.get_by_text("Which is best?").is_visible()
            page.locator(".st-key-compose-continuations").evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(600)
            page.screenshot(path=str(folder / f"continue-{metre}-desktop-1280.png"))

            # ---- the pick: three comparisons of this rater, under composed:<name>
            page.locator(".st-key-compose-pick-2 button").click()
            page.get_by_text("Stored: continuation 2 preferred over the other three").wait_for()
            data = load_training_data(store, tag=f"composed:{name}")
            assert len(data.comparisons) == 3 and {c.rater for c in data.comparisons} == {name}
            assert {c.choice for c in data.comparisons} == {"a"}
            assert len({c.melody_a_id for c in data.comparisons}) == 1
            assert dict(store.tags())[f"composed:{name}"] == 4
            first = data.comparisons[0].melody_a
            opening = Melody.from_abc(OPENINGS[metre])
            assert first.metre == opening.metre and first.notes()[:len(opening.notes())] == opening.notes()

            # ---- a phone: the same page, the continuations stacked
            phone = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                        device_scale_factor=2)
            mobile = phone.new_page()
            mobile.set_default_timeout(45_000)
            open_continue_page(mobile, base_url, f"Phone {metre}")
            continue_opening(mobile, OPENINGS[metre])
            mobile.locator(".st-key-continuation-1 img[alt^='score']").wait_for()
            mobile.locator(".st-key-continuation-1").evaluate("e => e.scrollIntoView({block: 'start'})")
            mobile.wait_for_timeout(600)
            mobile.screenshot(path=str(folder / f"continue-{metre}-phone-390.png"))
            mobile.locator(".st-key-compose-none button").click()
            mobile.get_by_text("Nothing stored.").wait_for()
            assert f"composed:Phone {metre}" not in dict(store.tags())
            phone.close()
        finally:
            browser.close()
