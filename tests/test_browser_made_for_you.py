"""Made for you (issue 21), in Debian's chromium, headless, for a study in 4/4, 3/4 and 6/8.

A rater finishes a short pairs study (3 items); "Made for you" first says the melodies are
not ready; the organiser's work (``study personalise``, here through the library with a tiny
prior, a small reward model, best-of-2 and 2 melodies) makes them; the page then opens a
blind A/B pair at once, the rater answers it, the answer is stored as a comparison of the
study, and the organiser area's Made for you table counts it for the rater. The page is
photographed at 1280x800 and on a phone (390x844) as ``made-for-you-<metre>-1280.png`` and
``-390.png`` in the test's temporary folder (and in ``RLCOMPOSER_SCREENSHOTS=DIR`` when set).
Skipped when chromium or the playwright package is missing.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, start_app, stop_app
from test_study_personalise import answer, small_model, tune

from rlcomposer.feedback import database
from rlcomposer.feedback.personalise import made_for_you_results, personalise_study
from rlcomposer.feedback.store import open_store
from rlcomposer.feedback.study import StudySpec, create_study, get_study
from rlcomposer.preferences.listeners import lyrical
from rlcomposer.prior.registry import resolve_model

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")
ITEMS = 3
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


@pytest.fixture(params=["4/4", pytest.param("3/4", marks=pytest.mark.slow), pytest.param("6/8", marks=pytest.mark.slow)])
def made_server(request, tmp_path):
    metre = request.param
    url = f"sqlite:///{tmp_path / 'made.sqlite3'}"
    store = open_store(url)
    pickup = 4 if metre == "3/4" else 0
    store.add_melodies([tune(metre, 4, pickup_steps=pickup, seed=i) for i in range(8)], "tunes")
    study = create_study(store, StudySpec(name="taste", pool_tags=("tunes",), items_per_rater=ITEMS,
                                          repeat_share=0.0, listen_fraction=0.0))
    answer(store, study, "sim:lyrical", lyrical, 12, seed=1)
    answer(store, study, "sim:opposite", lambda m: -lyrical(m), 12, seed=2)
    server, base_url, _ = start_app(url, tmp_path, RLCOMPOSER_ADMIN_PASSWORD=PASSWORD)
    try:
        yield base_url, store, metre
    finally:
        stop_app(server)
        database.dispose_engine(url)


def item_id(page) -> str:
    left = page.locator("[class*='st-key-answer-left-']")
    left.wait_for()
    return left.get_attribute("class").split("st-key-answer-left-")[1].split()[0]


def open_made_for_you(page) -> float:
    """Press Made for you on the completion page; seconds until the pair's answer buttons show."""
    page.get_by_text("Thank you!").wait_for()
    started = time.perf_counter()
    page.locator(".st-key-open-made-for-you button").click()
    page.locator("[class*='st-key-answer-left-'] button:not([disabled])").wait_for()
    return time.perf_counter() - started


def shoot(page, path: Path) -> None:
    page.locator("img[alt='score B']").wait_for()
    page.wait_for_function("[...document.querySelectorAll(\"img[alt^='score']\")].every(i => i.complete)")
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    if os.environ.get("RLCOMPOSER_SCREENSHOTS"):
        folder = Path(os.environ["RLCOMPOSER_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)


def test_a_rater_finishes_the_study_and_answers_a_blind_ab_of_melodies_made_for_them(made_server, metre_prior_dir,
                                                                                      tmp_path):
    base_url, store, metre = made_server
    name = metre.replace("/", "-")
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(f"{base_url}/?study=taste")
            page.get_by_label("Your rater name", exact=True).fill("Rae")
            page.get_by_text("I agree that my answers").click()
            page.get_by_role("button", name="Start rating").click()
            page.get_by_text(f"0 of {ITEMS}").wait_for()
            for _ in range(ITEMS):
                client_id = item_id(page)
                page.locator(f"[class*='st-key-answer-left-{client_id}'] button:not([disabled])").click()
                page.locator(f"[class*='st-key-answer-left-{client_id}']").wait_for(state="detached")
            page.get_by_text("Thank you!").wait_for()
            page.locator(".st-key-open-made-for-you button").click()
            page.get_by_text("Your melodies are not ready yet").wait_for()
            # ---- the organiser's work, beforehand (never in a rater's click)
            study = get_study(store, "taste")
            result = personalise_study(store, study, small_model(store, study, metre_prior_dir),
                                       resolve_model(str(metre_prior_dir)), best_of=2, melodies=2)
            rae = store.find_rater("Rae")
            assert {b.rater: b.made for b in result.raters}["Rae"] == 2
            link = page.url
            page.goto(link)  # the personal link signs Rae back in
            seconds = open_made_for_you(page)
            assert seconds < 4.0, seconds  # the pool is read, no model: well under 2 s on a quiet machine
            assert page.get_by_text("made for you from your answers").is_visible()
            client_id = item_id(page)
            shown = {page.locator(f"img[alt='score {label}']").get_attribute("src") for label in ("A", "B")}
            assert len(shown) == 2
            shoot(page, tmp_path / f"made-for-you-{name}-1280.png")
            phone = browser.new_page(**PHONE)
            phone.set_default_timeout(60_000)
            phone.goto(link)
            open_made_for_you(phone)
            shoot(phone, tmp_path / f"made-for-you-{name}-390.png")
            phone.close()
            page.locator(f"[class*='st-key-answer-left-{client_id}'] button:not([disabled])").click()
            page.locator(f"[class*='st-key-answer-left-{client_id}']").wait_for(state="detached")
            deadline = time.monotonic() + 30
            while not [c for c in store.comparisons() if c.rater_id == rae.id and c.client_id == client_id]:
                assert time.monotonic() < deadline, "the A/B answer was not stored"
                time.sleep(0.2)
            [stored] = [c for c in store.comparisons() if c.client_id == client_id]
            assert stored.study_id == study.id and stored.choice == stored.shown_left  # "A is better"
            rows, total = made_for_you_results(store, study)
            assert {r.rater: r.answers for r in rows}["Rae"] == 1 and total.answers == 1
            # ---- the organiser area counts it for Rae
            organiser = browser.new_page(viewport={"width": 1280, "height": 900})
            organiser.set_default_timeout(60_000)
            organiser.goto(f"{base_url}/?area=organiser")
            organiser.get_by_label("Organiser password").fill(PASSWORD)
            organiser.get_by_role("button", name="Open the organiser area").click()
            table = organiser.locator(".st-key-made-for-you-results")
            table.wait_for()
            row = table.locator("tr", has_text="Rae")
            row.wait_for()
            cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
            assert cells[:3] == ["Rae", "2", "1"], cells  # rater, melodies made, A/B answers
            assert cells[3] in ("0%", "100%") and "–" in cells[4], cells
            assert table.locator("tr", has_text="total").locator("td").nth(1).inner_text().strip() == "1"
        finally:
            browser.close()
    for size in ("1280", "390"):
        assert (tmp_path / f"made-for-you-{name}-{size}.png").stat().st_size > 10_000
