"""Server-side time to prepare the rating page's next item: selection + audio + score + piano roll.

For 100 items (a random single melody from the pool, as the app's RandomSelection
picks it, excluding what the rater has already rated), measures: choosing the
item in the database, reading the melody, rendering the WAV, engraving the score
with verovio (from MusicXML) and drawing the piano roll. The process is warmed up
first (imports, verovio's fonts), as the app is once it has served its first page.

Melodies come from the shipped prior when it is installed, else from uniformly
random tokens (more notes than real tunes: a harder case for the engraver).

Prints ``median_ms: N`` and, last, ``p95_ms: N`` (target: p95 <= 300 ms).

    python experiments/bench_app.py [--items 100] [--bars 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from rlcomposer.feedback import database
from rlcomposer.feedback.presentation import prepare_melody_view
from rlcomposer.feedback.selection import RandomSelection
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.music.melody import random_melody


def pool_melodies(n: int, bars: int):
    try:
        from rlcomposer.prior.generation import GenerationConfig, sample_melodies
        from rlcomposer.prior.registry import resolve_model

        model = resolve_model("prior")
        return "prior", sample_melodies(model, GenerationConfig(num_melodies=n, num_bars=bars, seed=0))
    except Exception:  # noqa: BLE001 - no shipped prior in this checkout
        rng = np.random.default_rng(0)
        return "random", [random_melody(rng, bars * 16) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--bars", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        store = open_store(url)
        source, melodies = pool_melodies(args.items + 20, args.bars)
        store.add_melodies(melodies, "bench", model=source)
        rater = store.sign_in("bench-rater")
        strategy = RandomSelection(repeat_share=0.0, seed=0)
        prepare_melody_view(melodies[-1])  # warm-up: imports, verovio fonts
        times = []
        for _ in range(args.items):
            started = time.perf_counter()
            item = strategy.next_item(store, rater.id, "single")
            record = store.get_melody(item.melody_ids[0])
            view = prepare_melody_view(record.melody)
            times.append((time.perf_counter() - started) * 1000)
            assert view.wav and view.score_svg.startswith("<svg") and view.piano_roll_svg
            store.submit_rating(new_client_id(), rater.id, record.id, 3)  # never the same item again
        database.dispose_engine(url)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    print(f"items: {len(times)} melodies: {source}, {args.bars} bars")
    print(f"mean_ms: {statistics.fmean(times):.1f}")
    print(f"median_ms: {statistics.median(times):.1f}")
    print(f"p95_ms: {p95:.1f}")


if __name__ == "__main__":
    main()
