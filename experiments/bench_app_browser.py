"""Browser-side time from an answer click until the next item is ready, in headless chromium.

Starts ``rlcomposer app`` on a fresh database (SQLite by default, ``--db URL`` for another)
with a pool of melodies from the shipped prior (uniformly random ones when it is not
installed) and a pairs study that needs no listening (``listen_fraction 0``: this measures
the page, not the rater), signs a rater in, and answers ``--answers`` pairs. For each answer
the page itself measures (``performance.now()``) from the click until the next item is
ready: its answer buttons (with the new item's id) are in the DOM and enabled, both score
images have changed, and both players' audio elements have fired ``canplay`` for the
new item. Between answers the rater "listens" for ``--think-ms`` (the next item is
prepared meanwhile, as in a real study).

Prints the load (``os.getloadavg``) before and after, ``p50_ms: N`` and, last,
``p95_ms: N`` (target: p95 <= 500 ms).

    python experiments/bench_app_browser.py [--answers 30] [--think-ms 1500] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required"]

# Clicks the answer button of the item on screen and resolves with the milliseconds until
# the next item is ready (or -1 when the study is over).
ANSWER_AND_TIME = """
async (key) => {
  const prefix = {a: "answer-left-", b: "answer-right-", "=": "answer-tie-", s: "answer-skip-"}[key];
  const container = document.querySelector(`[class*='st-key-${prefix}']`);
  const old = container.className.split(`st-key-${prefix}`)[1].split(" ")[0];
  const oldScores = [...document.querySelectorAll("img[alt^='score']")].map(i => i.src).join("|");
  const started = performance.now();
  container.querySelector("button").click();
  return await new Promise((resolve) => {
    const giveUp = setTimeout(() => resolve(-2), 30000);
    function check() {
      if (document.body.innerText.includes("Thank you!")) { resolve(-1); return; }
      const next = document.querySelector("[class*='st-key-answer-left-']");
      if (next && !next.className.includes(old)) {
        const id = next.className.split("st-key-answer-left-")[1].split(" ")[0];
        const buttons = [...document.querySelectorAll(`[class*='${id}'] button`)];
        const scores = [...document.querySelectorAll("img[alt^='score']")];
        const frames = [...document.querySelectorAll("iframe[title*='listen_player']")];
        const ready = buttons.length >= 4 && buttons.every(b => !b.disabled)
          && scores.length === 2 && scores.map(i => i.src).join("|") !== oldScores
          && frames.length === 2 && frames.every(f => {
            try { return f.contentDocument.body.dataset.canplay === id; } catch (e) { return false; }
          });
        if (ready) { clearTimeout(giveUp); resolve(performance.now() - started); return; }
      }
      setTimeout(check, 4);
    }
    check();
  });
}
"""
DEBUG_STATE = """
() => ({ items: [...document.querySelectorAll("[class*='st-key-answer-']")].map(e => e.className.split("st-key-")[1]),
         disabled: [...document.querySelectorAll("[class*='st-key-answer-'] button")].map(b => b.disabled),
         scores: document.querySelectorAll("img[alt^='score']").length,
         frames: [...document.querySelectorAll("iframe[title*='listen_player']")].map(f => {
           try { return f.contentDocument.body.dataset.canplay || "none"; } catch (e) { return String(e); } }),
         buttons: (() => { const n = document.querySelector("[class*='st-key-answer-left-']");
           const id = n.className.split("st-key-answer-left-")[1].split(" ")[0];
           return document.querySelectorAll(`[class*='${id}'] button`).length; })(),
         text: document.body.innerText.slice(0, 100) })
"""
CURRENT_ITEM = """
() => { const c = document.querySelector("[class*='st-key-answer-left-']");
        return c ? c.className.split("st-key-answer-left-")[1].split(" ")[0] : null; }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pool_melodies(n: int, bars: int):
    try:
        from rlcomposer.prior.registry import resolve_model

        return "prior", resolve_model("prior").sample(n, bars * 16, np.random.default_rng(0))
    except Exception:  # noqa: BLE001 - no shipped prior in this checkout
        from rlcomposer.music.melody import random_melody

        rng = np.random.default_rng(0)
        return "random", [random_melody(rng, bars * 16) for _ in range(n)]


def prepare_database(url: str, pool_size: int, bars: int, study: str = "bench") -> str:
    from rlcomposer.feedback.store import open_store
    from rlcomposer.feedback.study import StudySpec, create_study

    store = open_store(url)
    source, melodies = pool_melodies(pool_size, bars)
    store.add_melodies(melodies, "bench", model=source)
    create_study(store, StudySpec(name=study, pool_tags=("bench",), mode="pairs", items_per_rater=10_000,
                                  listen_fraction=0.0, repeat_share=0.0))
    return source


class App:
    """``rlcomposer app`` in the background, stopped on exit."""

    def __init__(self, url: str, folder: Path):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLCOMPOSER_")}
        env["RLCOMPOSER_DATABASE_URL"] = url
        self.log = (folder / "streamlit.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rlcomposer.cli", "app", "--db", url, "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
             "--global.developmentMode", "false"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.base_url}/_stcore/health", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the app did not start") from None
                time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def sign_in(browser, base_url: str, study: str, name: str):
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    await page.goto(f"{base_url}/?study={study}")
    await page.get_by_label("Your rater name", exact=True).fill(name)
    await page.get_by_text("I agree").click()
    await page.get_by_role("button", name="Start rating").click()
    await page.locator("[class*='st-key-answer-left-'] button:not([disabled])").first.wait_for()
    await page.wait_for_function("""() => [...document.querySelectorAll("iframe[title*='listen_player']")]
        .filter(f => { try { return f.contentDocument.body.dataset.canplay; } catch (e) { return false; } })
        .length === 2""")
    return page


async def answer_loop(page, *, answers: int | None = None, until: float | None = None, think_ms: int = 1500,
                      rng: np.random.Generator | None = None) -> tuple[list[float], list[str]]:
    """Answer until ``answers`` are given or the monotonic time ``until``; returns the
    browser-side times (ms) and the ids of the items answered."""
    rng = rng or np.random.default_rng(0)
    times: list[float] = []
    answered: list[str] = []
    while (answers is None or len(times) < answers) and (until is None or time.monotonic() < until):
        await page.wait_for_timeout(think_ms)
        item = await page.evaluate(CURRENT_ITEM)
        key = str(rng.choice(["a", "b", "="]))
        elapsed = await page.evaluate(ANSWER_AND_TIME, key)
        answered.append(item)
        if elapsed == -2:
            state = await page.evaluate(DEBUG_STATE)
            raise RuntimeError(f"the next item was not ready 30 s after the click: {state}")
        if elapsed < 0:
            break
        times.append(elapsed)
    return times, answered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


async def run(args: argparse.Namespace, url: str, folder: Path) -> list[float]:
    from playwright.async_api import async_playwright

    app = App(url, folder)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = await sign_in(browser, app.base_url, "bench", "bench-rater")
            await answer_loop(page, answers=2, think_ms=args.think_ms)  # warm-up (first renders)
            times, _ = await answer_loop(page, answers=args.answers, think_ms=args.think_ms)
            await browser.close()
    finally:
        app.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=30, help="answers measured (default 30)")
    parser.add_argument("--think-ms", type=int, default=1500, help="'listening' time before each answer")
    parser.add_argument("--pool", type=int, default=60, help="melodies in the pool (default 60)")
    parser.add_argument("--bars", type=int, default=4)
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        source = prepare_database(url, args.pool, args.bars)
        times = asyncio.run(run(args, url, Path(folder)))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"answers: {len(times)} (pairs of {source} melodies, {args.bars} bars, think {args.think_ms} ms)")
    print(f"mean_ms: {statistics.fmean(times):.0f}")
    print(f"max_ms: {max(times):.0f}")
    print(f"p50_ms: {percentile(times, 0.5):.0f}")
    print(f"p95_ms: {percentile(times, 0.95):.0f}")


if __name__ == "__main__":
    main()
