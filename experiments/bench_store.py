"""Concurrent raters against the rating store: nothing lost, nothing duplicated, submits per second.

16 raters (threads) x 50 submissions each (stars and A/B comparisons), on SQLite (a
temporary WAL file) and on PostgreSQL (a throwaway database on
$RLCOMPOSER_TEST_POSTGRES_URL's server, default postgres@127.0.0.1:5432/test).
Retries of the same submission ids are mixed in: a share of submissions is sent
twice at the same moment (a double click: two threads race), and every rater
re-sends some earlier submissions at the end (a client that never saw the reply).

Prints, per database: ``lost: N duplicated: N`` and ``submits/s: N`` (unique
submissions stored per second of wall time, retries included in the work).

    python experiments/bench_store.py [--raters 16] [--submits 50] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rlcomposer.feedback import database
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.feedback.testing import (
    DEFAULT_POSTGRES_SERVER,
    ENV_TEST_POSTGRES_URL,
    postgres_reachable,
    throwaway_postgres,
)
from rlcomposer.music.melody import random_melody


def run(url: str, raters: int, submits: int, double_share: float, resend: int, seed: int) -> dict:
    store = open_store(url)
    rng = np.random.default_rng(seed)
    pool = store.add_melodies([random_melody(rng, 64) for _ in range(60)], "bench", model="random").ids
    people = [store.sign_in(f"bench-rater-{i:02d}") for i in range(raters)]
    intended: dict[str, tuple] = {}
    intended_lock = threading.Lock()
    requests = [0]
    failures: list[str] = []

    def send(entry: tuple) -> None:
        kind, client_id, rater_id, *rest = entry
        if kind == "stars":
            store.submit_rating(client_id, rater_id, rest[0], rest[1])
        else:
            store.submit_comparison(client_id, rater_id, rest[0], rest[1], rest[2], rest[3])
        with intended_lock:
            requests[0] += 1

    def rater(index: int) -> None:
        local = random.Random(seed * 1000 + index)
        rater_id = people[index].id
        mine = []
        with ThreadPoolExecutor(max_workers=2) as clicks:
            for _ in range(submits):
                client_id = new_client_id()
                if local.random() < 0.6:
                    entry = ("stars", client_id, rater_id, local.choice(pool), local.randint(1, 5))
                else:
                    a, b = local.sample(pool, 2)
                    entry = ("pair", client_id, rater_id, a, b, local.choice(["a", "b", "tie", "skip"]),
                             local.choice("ab"))
                with intended_lock:
                    intended[client_id] = entry
                mine.append(entry)
                try:
                    if local.random() < double_share:  # a double click: the same id twice at once
                        for future in [clicks.submit(send, entry), clicks.submit(send, entry)]:
                            future.result()
                    else:
                        send(entry)
                except Exception as error:  # noqa: BLE001 - counted as a failure below
                    failures.append(f"{type(error).__name__}: {error}")
            for entry in local.sample(mine, min(resend, len(mine))):  # retries after a lost reply
                try:
                    send(entry)
                except Exception as error:  # noqa: BLE001
                    failures.append(f"{type(error).__name__}: {error}")

    started = time.perf_counter()
    threads = [threading.Thread(target=rater, args=(i,)) for i in range(raters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started

    stored = {}
    duplicated = 0
    for record in store.ratings():
        duplicated += record.client_id in stored
        stored[record.client_id] = ("stars", record.client_id, record.rater_id, record.melody_id, record.stars)
    for record in store.comparisons():
        duplicated += record.client_id in stored
        stored[record.client_id] = ("pair", record.client_id, record.rater_id, record.melody_a_id,
                                    record.melody_b_id, record.choice, record.shown_left)
    lost = sum(1 for cid in intended if cid not in stored)
    wrong = sum(1 for cid, entry in intended.items() if cid in stored and stored[cid] != entry)
    extra = sum(1 for cid in stored if cid not in intended)
    return {"unique": len(intended), "requests": requests[0], "seconds": seconds, "lost": lost,
            "duplicated": duplicated + extra, "wrong": wrong, "failures": failures,
            "store": store}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=16)
    parser.add_argument("--submits", type=int, default=50)
    parser.add_argument("--double-share", type=float, default=0.2, help="share of double clicks")
    parser.add_argument("--resend", type=int, default=5, help="earlier submissions each rater re-sends")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    server = os.environ.get(ENV_TEST_POSTGRES_URL, DEFAULT_POSTGRES_SERVER)

    for name in ("sqlite", "postgresql"):
        if args.only and name != args.only:
            continue
        if name == "sqlite":
            folder = tempfile.TemporaryDirectory()
            url = f"sqlite:///{Path(folder.name) / 'bench.sqlite3'}"
            context = None
        else:
            if not postgres_reachable(server):
                print(f"database: postgresql (skipped: {database.display_url(server)} not reachable)")
                continue
            context = throwaway_postgres(server, prefix="rlc_bench")
            url = context.__enter__()
        try:
            result = run(url, args.raters, args.submits, args.double_share, args.resend, args.seed)
        finally:
            database.dispose_engine(url)
            if context is not None:
                context.__exit__(None, None, None)
            else:
                folder.cleanup()
        print(f"database: {name}")
        print(f"raters: {args.raters} submissions: {result['unique']} requests (retries included): "
              f"{result['requests']} seconds: {result['seconds']:.2f}")
        if result["failures"] or result["wrong"]:
            print(f"failed requests: {len(result['failures'])} wrong rows: {result['wrong']} "
                  f"first: {result['failures'][:1]}")
        print(f"lost: {result['lost']} duplicated: {result['duplicated']}")
        print(f"submits/s: {result['unique'] / result['seconds']:.0f}")


if __name__ == "__main__":
    main()
