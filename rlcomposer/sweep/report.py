"""``rlcomposer sweep report``: one table of a sweep's trials, grouped by the swept keys, with plots.

Reads the finished trials of a sweep folder (``trials/NAME/trial.json``; Ray is not
needed) and writes into it

* ``trials.csv`` — every trial: its swept values, then its results (win-rate, KL, best-of-N,
  reward-model accuracy and ECE, musicality, wall time);
* ``summary.csv`` — per group of the swept keys other than ``seed``: trials, then mean,
  standard deviation and a 95% interval (Student's t over the seeds) of every result;
* ``report.md`` — both tables in Markdown;
* ``plots/frontier.png`` — win-rate against KL per group, the PPO (or DPO) policy and
  best-of-N at the same KL side by side (mean and 95% interval, every trial as a dot);
* ``plots/accuracy_vs_labels.png`` — the reward model's accuracy against the number of labels.

TensorBoard of every trial is under the sweep folder: ``tensorboard --logdir OUT``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.sweep.runner import finished_trials, read_sweep_state
from rlcomposer.sweep.spec import SEED_KEY, SweepError

RESULTS = (
    ("win_rate", "win-rate (policy)"),
    ("kl", "KL policy"),
    ("best_of_n_win_rate", "win-rate (best-of-N)"),
    ("kl_best_of_n", "KL best-of-N"),
    ("best_of_n", "N"),
    ("labels", "labels"),
    ("rm_accuracy", "RM held-out acc."),
    ("rm_ece", "RM ECE"),
    ("rm_accuracy_noiseless", "RM acc. vs noiseless"),
    ("style_overlap", "style overlap (policy)"),
    ("style_overlap_best_of_n", "style overlap (best-of-N)"),
    ("distinct_patterns", "4-note patterns vs prior"),
    ("collapse_warnings", "collapse warnings"),
    ("wall_seconds", "wall s"),
)
"""(result key, column title) of the tables, in order."""
SUMMARY_RESULTS = ("win_rate", "kl", "best_of_n_win_rate", "kl_best_of_n", "rm_accuracy", "rm_ece",
                   "rm_accuracy_noiseless", "style_overlap", "style_overlap_best_of_n", "wall_seconds")
"""The results the grouped table summarises (mean, standard deviation, 95% interval)."""
LABEL_KEYS = ("comparisons_per_round", "rounds")
"""Swept keys that set the number of labels (the x axis of the accuracy plot, not a series)."""


@dataclass
class Summary:
    """Mean, sample standard deviation and 95% interval of one result over a group's trials."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        values = [v for v in values if v is not None and not math.isnan(v)]
        n = len(values)
        if n == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        mean = float(np.mean(values))
        if n == 1:
            return cls(1, mean, math.nan, math.nan, math.nan)
        std = float(np.std(values, ddof=1))
        half = student_t_quantile(0.975, n - 1) * std / math.sqrt(n)
        return cls(n, mean, std, mean - half, mean + half)


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on its CDF)."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError("p must be in [0.5, 1) and df at least 1")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t: float) -> float:  # 0.5 + the density's integral from 0 to t (Simpson's rule)
        steps = 2000
        x = np.linspace(0.0, t, steps + 1)
        density = np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df))
        weights = np.ones(steps + 1)
        weights[1:-1:2], weights[2:-1:2] = 4, 2
        return 0.5 + float(weights @ density) * t / (3 * steps)

    low, high = 0.0, 1.0
    while cdf(high) < p:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < p else (low, middle)
    return (low + high) / 2


@dataclass
class SweepReport:
    """What ``sweep report`` wrote."""

    trials: int
    groups: int
    markdown: str
    files: list[Path] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Every finished trial: name, swept values, results."""
    summary: list[dict[str, Any]] = field(default_factory=list)
    """Per group: its values of the swept keys (seed aside), n, and a :class:`Summary` per result."""


def _group_keys(swept: list[str]) -> list[str]:
    return [key for key in swept if key != SEED_KEY]


def _method(row: dict[str, Any]) -> str:
    algorithm = (row["config"].get("tune") or {}).get("algorithm", "sequence")
    return "DPO policy" if algorithm == "dpo" else "PPO policy"


def build_report(out: str | Path) -> SweepReport:
    """The tables of a sweep folder (nothing written)."""
    out = Path(out)
    state = read_sweep_state(out)
    swept = list(state.get("swept_keys") or [])
    done = finished_trials(out)
    order = {t["name"]: t["index"] for t in state["trials"]}
    rows = []
    for name, trial in sorted(done.items(), key=lambda item: order.get(item[0], 1 << 30)):
        rows.append({"trial": name, **{key: trial["params"].get(key) for key in swept},
                     **{key: trial["results"].get(key) for key, _ in RESULTS},
                     "config": trial["config"]})
    if not rows:
        raise SweepError(f"sweep {out}: no trial has finished yet (`rlcomposer sweep resume {out}` runs them)")
    group_keys = _group_keys(swept)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(_cell(row[key]) for key in group_keys), []).append(row)
    summary = []
    for values, members in groups.items():
        summary.append({**dict(zip(group_keys, values, strict=True)), "method": _method(members[0]),
                        "n": len(members),
                        **{key: Summary.of([_number(m[key]) for m in members]) for key in SUMMARY_RESULTS}})
    markdown = _markdown(out, state, swept, group_keys, rows, summary)
    return SweepReport(trials=len(rows), groups=len(summary), markdown=markdown, rows=rows, summary=summary)


def write_sweep_report(out: str | Path) -> SweepReport:
    """Write ``trials.csv``, ``summary.csv``, ``report.md`` and the plots into the sweep folder."""
    out = Path(out)
    report = build_report(out)
    state = read_sweep_state(out)
    swept = list(state.get("swept_keys") or [])
    group_keys = _group_keys(swept)
    trials_csv = out / "trials.csv"
    with trials_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", *swept, *(key for key, _ in RESULTS)])
        for row in report.rows:
            writer.writerow([row["trial"], *(_cell(row[k]) for k in swept), *(_csv(row[k]) for k, _ in RESULTS)])
    summary_csv = out / "summary.csv"
    with summary_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*group_keys, "method", "trials",
                         *(f"{key}_{part}" for key in SUMMARY_RESULTS for part in ("mean", "std", "ci95_low", "ci95_high"))])
        for group in report.summary:
            writer.writerow([*(group[k] for k in group_keys), group["method"], group["n"],
                             *(_csv(getattr(group[key], part)) for key in SUMMARY_RESULTS
                               for part in ("mean", "std", "low", "high"))])
    markdown_path = out / "report.md"
    markdown_path.write_text(report.markdown + "\n", encoding="utf-8")
    report.files = [trials_csv, summary_csv, markdown_path, *_plots(out, report, group_keys)]
    return report


# ---- formatting -----------------------------------------------------------
def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return str(value)
    return value


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _csv(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _fmt(value: Any, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key in ("best_of_n", "labels", "collapse_warnings"):
        return str(int(value))
    if key == "wall_seconds":
        return f"{value:.0f}"
    return f"{value:.2f}" if key.startswith("kl") else f"{value:.3f}"


def _interval(summary: Summary, key: str) -> str:
    if summary.n == 0:
        return "n/a"
    if summary.n == 1:
        return f"{_fmt(summary.mean, key)} (1 trial)"
    return f"{_fmt(summary.mean, key)} [{_fmt(summary.low, key)}, {_fmt(summary.high, key)}]"


def _markdown(out: Path, state, swept, group_keys, rows, summary) -> str:
    seeds = sorted({row.get(SEED_KEY) for row in rows if row.get(SEED_KEY) is not None})
    lines = [f"# Sweep `{out.name}`", "",
             f"{len(rows)} of {len(state['trials'])} trials finished; swept: "
             f"{', '.join(f'`{k}`' for k in swept)}. Groups: {', '.join(group_keys) or 'all trials'}"
             f"{f', over seeds {seeds}' if seeds else ''}: mean [95% interval, Student's t].", "",
             "| " + " | ".join([*group_keys, "method", "trials", "win-rate (policy)", "KL policy",
                                "win-rate (best-of-N at that KL)", "KL best-of-N", "RM held-out acc.", "RM ECE",
                                "RM acc. vs noiseless", "style overlap (policy / best-of-N)", "wall s"]) + " |",
             "|" + "---|" * (len(group_keys) + 11)]
    for group in summary:
        style = (f"{_fmt(group['style_overlap'].mean, 'style_overlap')} / "
                 f"{_fmt(group['style_overlap_best_of_n'].mean, 'style_overlap')}")
        lines.append("| " + " | ".join([
            *(str(group[k]) for k in group_keys), group["method"], str(group["n"]),
            *(_interval(group[k], k) for k in ("win_rate", "kl", "best_of_n_win_rate", "kl_best_of_n",
                                                "rm_accuracy", "rm_ece", "rm_accuracy_noiseless")),
            style, _fmt(group["wall_seconds"].mean, "wall_seconds")]) + " |")
    lines += ["", "## Every trial", "",
              "| " + " | ".join(["trial", *swept, *(title for _, title in RESULTS)]) + " |",
              "|" + "---|" * (1 + len(swept) + len(RESULTS))]
    for row in rows:
        lines.append("| " + " | ".join([row["trial"], *(str(row[k]) for k in swept),
                                        *(_fmt(row[k], k) for k, _ in RESULTS)]) + " |")
    lines += ["", "Plots: `plots/frontier.png` (win-rate against KL), `plots/accuracy_vs_labels.png`. "
              "Each trial's own report: `trials/NAME/report.md`; TensorBoard of every trial: "
              f"`tensorboard --logdir {out}`."]
    return "\n".join(lines)


def _label(group: dict[str, Any], group_keys: list[str]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={group[k]}" for k in group_keys) or "all trials"


def _plots(out: Path, report: SweepReport, group_keys: list[str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    members: dict[tuple, list[dict[str, Any]]] = {}
    for row in report.rows:
        members.setdefault(tuple(_cell(row[k]) for k in group_keys), []).append(row)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axis = plt.subplots(figsize=(8, 5))
    for index, group in enumerate(report.summary):
        colour = colours[index % len(colours)]
        rows = members[tuple(_cell(group[k]) for k in group_keys)]
        label = _label(group, group_keys)
        for kl_key, win_key, marker, method in (("kl", "win_rate", "o", group["method"]),
                                                ("kl_best_of_n", "best_of_n_win_rate", "s", "best-of-N")):
            xs = [_number(r[kl_key]) for r in rows]
            ys = [_number(r[win_key]) for r in rows]
            pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
            if not pairs:
                continue
            axis.scatter(*zip(*pairs, strict=True), color=colour, marker=marker, alpha=0.35, s=18)
            x, y = group[kl_key], group[win_key]
            xerr = None if x.n < 2 else [[x.mean - x.low], [x.high - x.mean]]
            yerr = None if y.n < 2 else [[y.mean - y.low], [y.high - y.mean]]
            axis.errorbar([x.mean], [y.mean], xerr=xerr, yerr=yerr, color=colour, marker=marker,
                          markersize=8, capsize=3, linestyle="none",
                          fillstyle="full" if marker == "o" else "none", label=f"{label}: {method}")
    axis.axhline(0.5, color="grey", linewidth=0.8)
    axis.set_xlabel("KL to the prior per melody (nats)")
    axis.set_ylabel("listener's win-rate over the prior")
    axis.set_title("Win-rate against KL (mean and 95% interval over seeds; dots: trials)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    frontier = plot_dir / "frontier.png"
    figure.savefig(frontier, dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(7, 4.5))
    # one series per strategy and per value of the other swept keys, the label budget aside
    series_keys = [k for k in group_keys if k not in LABEL_KEYS and k != "strategy"]
    strategy_of: dict[str, list[dict[str, Any]]] = {}
    for row in report.rows:
        name = ", ".join([row["config"].get("strategy", "random"),
                          *(f"{k.split('.')[-1]}={row[k]}" for k in series_keys)])
        strategy_of.setdefault(name, []).append(row)
    for index, (strategy, rows) in enumerate(sorted(strategy_of.items())):
        colour = colours[index % len(colours)]
        by_labels: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            by_labels.setdefault(int(row["labels"]), []).append(row)
        for key, marker, name in (("rm_accuracy_noiseless", "o", "vs noiseless preference"),
                                  ("rm_accuracy", "s", "held-out, own noisy labels")):
            xs, means, errors = [], [], []
            for labels in sorted(by_labels):
                s = Summary.of([_number(r[key]) for r in by_labels[labels]])
                if s.n:
                    xs.append(labels)
                    means.append(s.mean)
                    errors.append(0.0 if s.n < 2 else s.high - s.mean)
            if xs:
                axis.errorbar(xs, means, yerr=errors, color=colour, marker=marker, capsize=3,
                              linestyle="-" if marker == "o" else "--", label=f"{strategy}: {name}")
    axis.set_xlabel("labels (comparisons)")
    axis.set_ylabel("reward-model accuracy")
    axis.set_title("Reward-model accuracy against labels (mean and 95% interval)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    accuracy = plot_dir / "accuracy_vs_labels.png"
    figure.savefig(accuracy, dpi=110)
    plt.close(figure)
    return [frontier, accuracy]


__all__ = ["SUMMARY_RESULTS", "Summary", "SweepReport", "build_report", "student_t_quantile",
           "write_sweep_report"]
