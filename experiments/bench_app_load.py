"""Load: concurrent raters (pages of one headless chromium) answering against one app process.

Makes a fresh PostgreSQL database (on ``$RLCOMPOSER_TEST_POSTGRES_URL``'s server, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; dropped at the end), a pool from
the shipped prior and a pairs study, starts one ``rlcomposer app`` process, signs in
``--raters`` raters (each its own browser context) and lets them answer for
``--seconds``, each "listening" ``--think-ms`` (± 50%) before an answer. Every answer is
timed in the page as in ``bench_app_browser.py`` (click until the next item is ready).

Then it compares what the raters clicked with what the database holds: answers lost
(clicked, not stored), duplicated (stored twice: the same submission id, or the same
pair twice for a rater in the study), and prints the load, ``answers``, ``lost``,
``duplicated``, ``p50_ms`` and, last, ``p95_ms``.

    python experiments/bench_app_load.py [--raters 10] [--seconds 180] [--think-ms 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_app_browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    App,
    answer_loop,
    percentile,
    prepare_database,
    sign_in,
)


async def rater(browser, base_url: str, index: int, until: float, think_ms: int):
    rng = np.random.default_rng(100 + index)
    page = await sign_in(browser, base_url, "bench", f"load-rater-{index}")
    times: list[float] = []
    answered: list[str] = []
    errors: list[str] = []
    while time.monotonic() < until:
        try:
            t, a = await answer_loop(page, until=until, think_ms=int(think_ms * rng.uniform(0.5, 1.5)), rng=rng,
                                     answers=1)
        except Exception as error:  # noqa: BLE001 - counted and reported
            errors.append(str(error).splitlines()[0][:200])
            await page.reload()
            continue
        times += t
        answered += a
    return times, answered, errors


async def run(args: argparse.Namespace, url: str, folder: Path):
    from playwright.async_api import async_playwright

    app = App(url, folder)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            until = time.monotonic() + args.seconds
            results = await asyncio.gather(*(rater(browser, app.base_url, i, until, args.think_ms)
                                             for i in range(args.raters)))
            await browser.close()
    finally:
        app.stop()
    return results


def main() -> None:
    from rlcomposer.feedback.store import open_store
    from rlcomposer.feedback.study import get_study
    from rlcomposer.feedback.testing import (
        DEFAULT_POSTGRES_SERVER,
        ENV_TEST_POSTGRES_URL,
        throwaway_postgres,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--think-ms", type=int, default=1500)
    parser.add_argument("--pool", type=int, default=80)
    args = parser.parse_args()
    server = os.environ.get(ENV_TEST_POSTGRES_URL, DEFAULT_POSTGRES_SERVER)
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder, throwaway_postgres(server, prefix="rlc_bench_load") as url:
        prepare_database(url, args.pool, 4)
        started = time.monotonic()
        results = asyncio.run(run(args, url, Path(folder)))
        elapsed = time.monotonic() - started
        store = open_store(url)
        study = get_study(store, "bench")
        stored = [c for c in store.comparisons() if c.study_id == study.id]
        print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    times = [t for r in results for t in r[0]]
    clicked = [cid for r in results for cid in r[1]]
    errors = [e for r in results for e in r[2]]
    stored_ids = Counter(c.client_id for c in stored)
    pairs = Counter((c.rater_id, frozenset((c.melody_a_id, c.melody_b_id))) for c in stored)
    lost = sum(1 for cid in set(clicked) if cid not in stored_ids)
    duplicated = sum(n - 1 for n in stored_ids.values() if n > 1) + sum(n - 1 for n in pairs.values() if n > 1)
    print(f"raters: {args.raters} for {elapsed:.0f} s (one app process, PostgreSQL), think {args.think_ms} ms ± 50%")
    print(f"answers: {len(set(clicked))} clicked, {len(stored)} stored")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"lost: {lost}")
    print(f"duplicated: {duplicated}")
    if times:
        print(f"mean_ms: {statistics.fmean(times):.0f}")
        print(f"p50_ms: {percentile(times, 0.5):.0f}")
        print(f"p95_ms: {percentile(times, 0.95):.0f}")


if __name__ == "__main__":
    main()
