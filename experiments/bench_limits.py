"""How fast bad input is refused: ``generate --bars`` at the limit and one past it, side by side.

Prints, for ``--bars 32`` (the limit: it samples and writes) and ``--bars 33`` / ``--bars 100000``
(refused), the wall time of the whole command (a fresh ``python -m rlcomposer.cli``, interpreter
start included) and of ``main()`` in this process (start-up excluded), the best of ``--repeats``.
Also the time to refuse a 37-byte MIDI file whose delta-times reach 268 million beats.
Run: ``python experiments/bench_limits.py`` (the figures vary with the machine's load: `uptime`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from rlcomposer.cli import main as cli_main

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for bars in ("32", "33", "100000"):
            argv = ["generate", "--model", "prior", "--n", "1", "--bars", bars, "--format", "json",
                    "--overwrite", "--quiet", "--out", str(Path(folder) / "out")]
            codes = set()

            def in_process(argv=argv, codes=codes):
                with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                    codes.add(cli_main(argv))

            def command(argv=argv, codes=codes):
                result = subprocess.run([sys.executable, "-m", "rlcomposer.cli", *argv], capture_output=True,
                                        env={**os.environ}, text=True)
                codes.add(result.returncode)

            rows.append((bars, best_of(args.repeats, in_process), best_of(args.repeats, command), sorted(codes)))
    print(f"{'--bars':>8} {'main() s':>10} {'command s':>10}  exit")
    for bars, inside, whole, codes in rows:
        print(f"{bars:>8} {inside:10.3f} {whole:10.3f}  {','.join(map(str, codes))}")

    import mido

    from rlcomposer.music.melody import Melody, MelodyError

    midi = mido.MidiFile(ticks_per_beat=1)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, time=0x0FFFFFFF))
    buffer = io.BytesIO()
    midi.save(file=buffer)

    def refuse():
        try:
            Melody.from_midi_bytes(buffer.getvalue())
        except MelodyError:
            return
        raise AssertionError("the MIDI bomb was accepted")

    print(f"refusing a {len(buffer.getvalue())}-byte MIDI file of 268M beats: "
          f"{best_of(args.repeats, refuse) * 1000:.2f} ms")
    print(f"load: {os.getloadavg()[0]:.1f} (1-minute average, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
