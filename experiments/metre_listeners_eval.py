"""The 6/8 loop for the panel members who hear the metre: best-of-N's and the tuned policy's
win-rates over the prior, per reporting member, and a before/after comparison of two such runs.

Each run is ``experiments/tuner_eval.py`` (``rlcomposer experiment run`` of
``experiments/configs/quickstart.yaml``: 300 noisy comparisons, one reward model, the ``rloo``
policy and best-of-N from its own 3-nat KL target) in 8 bars of 6/8, for every metre-hearing
member of the reporting half (25, 27, ..., 35), seed 0:

    python experiments/metre_listeners_eval.py --out runs/metre_68_before
    python experiments/metre_listeners_eval.py --out runs/metre_68_after
    python experiments/metre_listeners_eval.py --compare runs/metre_68_before runs/metre_68_after

The first two are ``tuner_eval.py --members metre-report --seeds 0 --tuners rloo,best-of-n
--best-of-k 0 --metre 6/8 --bars 8 --out DIR``; ``--compare`` prints, per member, both win-rates
in each run and the change of their medians.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _results(folder: Path) -> dict[int, dict]:
    found = {}
    for path in sorted(folder.glob("panel-*/seed-*/result.json")):
        record = json.loads(path.read_text())
        found.setdefault(record["member"], []).append(record)
    return found


def _rates(records: list[dict]) -> tuple[float, float, float]:
    """Median over seeds of best-of-N's and the policy's win-rates, and the reward model's accuracy."""
    best = [r["tuners"]["best-of-n"]["win_rate"] for r in records if "best-of-n" in r["tuners"]]
    policy = [r["tuners"]["rloo"]["win_rate"] for r in records if "rloo" in r["tuners"]]
    accuracy = [r["rm_noiseless_accuracy"] for r in records]
    return (float(np.median(best)) if best else float("nan"), float(np.median(policy)) if policy else float("nan"),
            float(np.median(accuracy)))


def compare(before: Path, after: Path) -> str:
    from rlcomposer.preferences.metre_panel import metre_member

    old, new = _results(before), _results(after)
    members = sorted(set(old) & set(new))
    lines = ["| member | signature | best-of-N before | after | policy before | after | "
             "RM accuracy before | after |", "|---|---|---|---|---|---|---|---|"]
    columns: dict[str, list[float]] = {name: [] for name in ("best0", "best1", "pol0", "pol1", "acc0", "acc1")}
    for member in members:
        b0, p0, a0 = _rates(old[member])
        b1, p1, a1 = _rates(new[member])
        for name, value in zip(columns, (b0, b1, p0, p1, a0, a1), strict=True):
            columns[name].append(value)
        lines.append(f"| panel:{member} | {metre_member(member).signature} | {b0:.3f} | {b1:.3f} | {p0:.3f} | "
                     f"{p1:.3f} | {a0:.3f} | {a1:.3f} |")
    median = {name: float(np.median(values)) for name, values in columns.items()}
    lines.append(f"| **median** | | {median['best0']:.3f} | {median['best1']:.3f} | {median['pol0']:.3f} | "
                 f"{median['pol1']:.3f} | {median['acc0']:.3f} | {median['acc1']:.3f} |")
    lines.append("")
    lines.append(f"change of the medians over members: best-of-N {median['best1'] - median['best0']:+.3f}, policy "
                 f"{median['pol1'] - median['pol0']:+.3f}, reward-model accuracy {median['acc1'] - median['acc0']:+.3f} "
                 f"({len(members)} members)")
    changes = {name: float(np.median(np.subtract(columns[f"{name}1"], columns[f"{name}0"])))
               for name in ("best", "pol", "acc")}
    lines.append(f"median of the members' changes: best-of-N {changes['best']:+.3f}, policy {changes['pol']:+.3f}, "
                 f"reward-model accuracy {changes['acc']:+.3f}")
    runs = {(r["member"], r["seed"]): r for member in members for r in old[member]}
    paired = [(runs[(r["member"], r["seed"])], r) for member in members for r in new[member]
              if (r["member"], r["seed"]) in runs]
    if len(paired) > len(members):  # several seeds: the runs one by one as well
        for name, tuner in (("best-of-N", "best-of-n"), ("policy", "rloo")):
            before = [b["tuners"][tuner]["win_rate"] for b, _ in paired]
            after = [a["tuners"][tuner]["win_rate"] for _, a in paired]
            lines.append(f"{name} over {len(paired)} runs (member x seed): median {np.median(before):.3f} -> "
                         f"{np.median(after):.3f}, median paired change {np.median(np.subtract(after, before)):+.3f}, "
                         f"better in {sum(a > b for a, b in zip(after, before, strict=True))} of {len(paired)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/metre_68", help="results folder of the runs")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), default=None,
                        help="print the before/after table of two finished result folders; run nothing")
    args = parser.parse_args(argv)
    if args.compare:
        print(compare(Path(args.compare[0]), Path(args.compare[1])))
        return 0
    import tuner_eval

    return tuner_eval.main(["--members", "metre-report", "--seeds", args.seeds, "--tuners", "rloo,best-of-n",
                            "--best-of-k", "0", "--metre", "6/8", "--bars", "8", "--out", args.out,
                            "--jobs", str(args.jobs)])


if __name__ == "__main__":
    sys.exit(main())
