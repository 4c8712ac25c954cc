"""Every melody drawn in its own metre and key (issue 19), in Debian's chromium, headless.

A pairs study whose pool mixes 8-bar tunes in G major: jigs in 6/8, waltzes in 3/4 (with a
pick-up of a quarter) and reels in 4/4. A rater rates it; every item's two scores show the
melodies' own time signature, one sharp (and no sharp on a note) and their 8 bars on one
line, a pick-up as a short first bar and no rests (read back from the score verovio
engraved, the image the page shows); the first 6/8 item is photographed at
1366 px wide (``metre-6-8-pair-1366.png`` in the test's temporary folder, and in
``RLCOMPOSER_SCREENSHOTS=DIR`` when set). Skipped when chromium or the playwright package is
missing.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from test_app_presentation import g_major_tune
from test_browser import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app

from rlcomposer.feedback import database
from rlcomposer.feedback.presentation import read_engraving
from rlcomposer.feedback.store import open_store
from rlcomposer.feedback.study import StudySpec, create_study

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")
ITEMS = 9
"""Three melodies of each metre make 9 pairs of one metre: by the last, a 6/8 pair has come."""


@pytest.fixture
def metre_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'metre.sqlite3'}"
    store = open_store(url)
    store.add_melodies([g_major_tune("6/8", 8, seed=i) for i in range(3)], "jigs")
    store.add_melodies([g_major_tune("3/4", 8, pickup_steps=4, seed=10 + i) for i in range(3)], "waltzes")
    store.add_melodies([g_major_tune("4/4", 8, seed=20 + i) for i in range(3)], "reels")
    create_study(store, StudySpec(name="metres", pool_tags=("jigs", "waltzes", "reels"), mode="pairs",
                                  items_per_rater=ITEMS, repeat_share=0.0, listen_fraction=0.0))
    server, base_url, _ = start_app(url, tmp_path)
    try:
        yield base_url, store
    finally:
        stop_app(server)
        database.dispose_engine(url)


def item_id(page) -> str:
    left = page.locator("[class*='st-key-answer-left-']")
    left.wait_for()
    return left.get_attribute("class").split("st-key-answer-left-")[1].split()[0]


def shown_scores(page, client_id: str) -> dict[str, dict]:
    """The two score images of the item on screen: what they show and where they are."""
    scores = {}
    for label in ("A", "B"):
        image = page.locator(f"img[alt='score {label}']")
        image.wait_for()
        page.wait_for_function(f"document.querySelector(\"img[alt='score {label}']\").complete")
        source = image.get_attribute("src")
        assert source.startswith("data:image/svg+xml;base64,")
        scores[label] = {"score": read_engraving(base64.b64decode(source.split(",", 1)[1]).decode("utf-8")),
                         "box": image.bounding_box(),
                         "drawn": image.evaluate("i => i.naturalWidth > 0 && i.naturalHeight > 0")}
    assert item_id(page) == client_id  # still the same item
    return scores


def test_a_mixed_metre_study_draws_each_melody_in_its_metre_key_and_8_bars_a_line(metre_server, tmp_path):
    base_url, store = metre_server
    metres = {m: store.get_melody(m).melody for m in store.melody_ids()}
    photographed = None
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{base_url}/?study=metres")
            page.get_by_label("Your rater name", exact=True).fill("Metre Mo")
            page.get_by_text("I agree that my answers").click()
            page.get_by_role("button", name="Start rating").click()
            page.get_by_text(f"0 of {ITEMS}").wait_for()
            for answered in range(ITEMS):
                client_id = item_id(page)
                scores = shown_scores(page, client_id)
                drawn = {s["score"].time_signatures for s in scores.values()}
                assert len(drawn) == 1  # a pair is always of one metre
                [(metre,)] = drawn
                assert metre in ("6/8", "3/4", "4/4")
                pickup = 4 if metre == "3/4" else 0
                for label, shown in scores.items():
                    score, box = shown["score"], shown["box"]
                    assert shown["drawn"], label  # the browser shows the image
                    assert (score.key_sharps, score.key_flats) == (1, 0), (label, score)  # G major
                    assert (score.lines, score.bars, score.rests) == (1, 8 + (pickup > 0), 0), (label, score)
                    assert score.accidentals == 0, (label, score)  # every F is sharp by the key signature
                    # what the eye sees: one line of music, inside the page, not cut
                    assert box["x"] >= 0 and box["x"] + box["width"] <= 1366 and box["height"] < 0.2 * box["width"]
                if metre == "6/8" and photographed is None:
                    page.wait_for_timeout(500)
                    photographed = tmp_path / "metre-6-8-pair-1366.png"
                    page.screenshot(path=str(photographed))
                    if os.environ.get("RLCOMPOSER_SCREENSHOTS"):
                        folder = Path(os.environ["RLCOMPOSER_SCREENSHOTS"])
                        folder.mkdir(parents=True, exist_ok=True)
                        shutil.copy(photographed, folder / photographed.name)
                page.locator(f"[class*='st-key-answer-left-{client_id}'] button:not([disabled])").click()
                page.locator(f"[class*='st-key-answer-left-{client_id}']").wait_for(state="detached")
                if answered + 1 < ITEMS:
                    page.get_by_text(f"{answered + 1} of {ITEMS}").wait_for()
            page.get_by_text("Thank you!").wait_for()
        finally:
            browser.close()
    assert photographed is not None and photographed.stat().st_size > 10_000
    # the answers were stored, each of a pair of one metre
    comparisons = store.comparisons()
    assert len(comparisons) == ITEMS
    assert all(metres[c.melody_a_id].metre == metres[c.melody_b_id].metre for c in comparisons)
    assert {metres[c.melody_a_id].metre.name for c in comparisons} == {"6/8", "3/4", "4/4"}
