"""The report of an experiment run: ``report.md`` and ``plots/`` from its rounds' results."""

from __future__ import annotations

import math
from pathlib import Path


def write_report(run_dir: Path, config, db_url: str, results: list) -> Path:
    """``report.md`` of a run folder (with its plots): every round's figures, the last round's
    tuners side by side, musicality and music metrics."""
    plots = write_plots(run_dir, results)
    who = (f"Listener: `{config.listener}`" if not config.personal else
           "Raters: everyone who answered (`personal: true`)" if config.listener == "people" else
           f"Raters: {', '.join(f'`{r}`' for r in config.raters)} (`personal: true`), each")
    lines = [f"# Experiment `{config.name}`", "",
             f"{who}; {config.comparisons_per_round} comparisons per "
             f"round ({config.strategy} selection); database `{db_url}`.", "",
             "| round | labels | RM held-out acc. | RM acc. vs noiseless | tuned win-rate vs prior | "
             "KL tuned | best-of-N win-rate | N (KL) | tune s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rm = r.reward_model
        lines.append(
            f"| {r.round} | {r.comparisons} | {_pct(rm.get('held_out', {}).get('accuracy'))} | "
            f"{_pct(rm.get('noiseless_accuracy'))} | {_pct(r.win_rate)}"
            f"{' (see warnings)' if r.collapse_warnings else ''} | {r.kl_tuned:.2f} | "
            f"{_pct(r.best_of_n_win_rate)} | {r.best_of_n} ({r.kl_best_of_n:.2f}) | {r.tune_seconds:.0f} |")
    if results and results[-1].raters is not None:
        lines += rater_lines(results[-1], config, db_url)
    if results and results[-1].tuners:
        last = results[-1]
        lines += ["", f"## Tuners side by side, round {last.round}", "",
                  "Each tuned model against the prior (the listener's noiseless preference), beside "
                  "best-of-N from the prior under the same reward model at the same KL; cost is "
                  "sampling speed (melodies/s) after tuning.", "",
                  "| tuner | win-rate | KL | best-of-N at that KL (N) | style overlap | "
                  "distinct 4-note patterns vs prior | tune s | melodies/s |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, row in last.tuners.items():
            music = row.get("musicality", {})
            best = (f"{_pct(row['best_of_n_win_rate'])} ({row['best_of_n']})"
                    if row.get("best_of_n") else "(is best-of-N)")
            lines.append(f"| {name} | {_pct(row['win_rate'])} | {row['kl']:.2f} | {best} | "
                         f"{music.get('style_overlap', math.nan):.2f} | "
                         f"{100 * music.get('distinct_pattern_ratio', math.nan):.0f}% | "
                         f"{row['tune_seconds']:.0f} | {row['melodies_per_second']:.0f} |")
        lines += ["", "Their first melodies, as notes (pitch/length in quarter notes, r = rest):", ""]
        for name, row in last.tuners.items():
            lines += [f"* {name}: `{example}`" for example in row.get("examples", [])[:2]]
    if results and results[-1].musicality:
        last = results[-1]
        names = list(last.musicality)
        lines += ["", f"## Musicality, round {last.round}", "",
                  "Style overlap with the held-out corpus (mean histogram intersection of intervals, "
                  "durations, scale degrees, range and notes per bar; 1 = the corpus's style), "
                  "diversity against the prior's melodies, and the longest run of one repeated pitch.", "",
                  "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        rows = [("style overlap", lambda m: f"{m['style_overlap']:.2f}"),
                *[(f"  {feature}", lambda m, f=feature: f"{m['feature_overlap'][f]:.2f}")
                  for feature in last.musicality[names[0]]["feature_overlap"]],
                ("distinct melodies", lambda m: f"{100 * m['distinct_melodies']:.0f}%"),
                ("distinct 4-note patterns vs prior", lambda m: f"{100 * m['distinct_pattern_ratio']:.0f}%"),
                ("longest repeated-pitch run (mean / max)",
                 lambda m: f"{m['longest_repeated_pitch_run']['mean']:.1f} / {m['longest_repeated_pitch_run']['max']}"),
                ("one pitch repeated", lambda m: f"{100 * m['monotone_share']:.1f}%")]
        for label, cell in rows:
            lines.append(f"| {label} | " + " | ".join(cell(last.musicality[n]) for n in names) + " |")
        lines += [""] + ([f"**Warning: {w}**" for w in last.collapse_warnings]
                         or ["The tuned melodies keep the prior's musicality: no collapse detected."])
    if results:
        lines += ["", f"## Round {results[-1].round}: prior vs tuned vs best-of-N "
                      f"({config.evaluation_pairs} melodies each)", "", "```",
                  results[-1].metrics_table.rstrip(), "```"]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(run_dir)})" for p in plots]
    last_n = results[-1].tuned_best_of if results else None
    source = {"best-of-n": f"best-of-{last_n} sampling from the prior under the round's reward model",
              "policy": "the tuned policy",
              "policy-best-of-k": f"the best of {config.policy_best_of_k} of the tuned policy's melodies under the "
                                  "round's reward model",
              "personal": f"best-of-{last_n} sampling from the prior under the population's reward"}[
        "personal" if config.personal else config.tuned_melodies]
    curves = ("" if config.personal else "Reward and KL curves per round: `round-K/policy/plots/`; TensorBoard: "
              f"`tensorboard --logdir {run_dir}`.")
    lines += ["", f"Tuned melodies (from {source}): `round-K/melodies/` (MIDI, MusicXML, WAV, JSON). {curves}".rstrip(),
              f"Rate them yourself: `rlcomposer app --db {db_url}`.", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def rater_lines(last, config, db_url: str) -> list[str]:
    """The "Made for each rater" section of a ``personal: true`` round: per rater, answers, the
    win-rates of their melodies (that rater's noiseless preference) and style overlap."""
    lines = ["", f"## Made for each rater, round {last.round}", "",
             f"Best-of-{last.tuned_best_of} from the prior (KL {last.kl_tuned:.2f} nats) under each rater's "
             "personal reward, against the prior's melodies and head to head against best-of-"
             f"{last.tuned_best_of} under the population's reward, judged by that rater's noiseless "
             "preference (ties count ½); melodies in `round-K/raters/FOLDER/melodies/`.", "",
             "| rater | answers | vs prior | vs population | style overlap | folder |",
             "|---|---|---|---|---|---|"]
    people = False
    for name, row in last.raters.items():
        people = people or row.get("vs_prior") is None
        lines.append(f"| {name} | {row['answers']} | {_pct(row.get('vs_prior'))} | "
                     f"{_pct(row.get('vs_population'))} | {row['style_overlap']:.2f} | `{row['folder']}` |")
    if people:
        lines += ["", "People have no noiseless preference to measure with: rate them in the app "
                      f"(`rlcomposer app --db {db_url}`)."]
    lines += ["", "Two melodies made for each, as notes (pitch/length in quarter notes, r = rest):", ""]
    for name, row in last.raters.items():
        lines += [f"* {name}: `{example}`" for example in row.get("examples", [])[:2]]
    return lines


def write_plots(run_dir: Path, results: list) -> list[Path]:
    """The run's plots: proxy vs gold along tuning, and win-rates per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    paths = []
    if results and results[-1].overoptimisation:
        history = results[-1].overoptimisation
        figure, axis = plt.subplots(figsize=(7, 4))
        kl = [h["kl_per_melody"] for h in history]
        if "reward_reward" in history[0]:
            axis.plot(kl, [h["reward_reward"] for h in history], ".-", color="tab:blue")
        axis.set_ylabel("reward model (proxy) mean", color="tab:blue")
        if "gold" in history[0]:
            gold_axis = axis.twinx()
            gold_axis.plot(kl, [h["gold"] for h in history], ".-", color="tab:orange")
            gold_axis.set_ylabel("listener (gold) mean", color="tab:orange")
        axis.set_xlabel("KL(policy || prior) per melody (nats), along tuning")
        axis.set_title("Proxy vs gold during tuning (over-optimisation)")
        axis.grid(alpha=0.3)
        figure.tight_layout()
        paths.append(plot_dir / "proxy_vs_gold.png")
        figure.savefig(paths[-1], dpi=110)
        plt.close(figure)
    if results and results[0].win_rate is not None:
        figure, axis = plt.subplots(figsize=(6, 4))
        rounds = [r.round for r in results]
        axis.plot(rounds, [r.win_rate for r in results], "o-", label="tuned (PPO)")
        axis.plot(rounds, [r.best_of_n_win_rate for r in results], "s--", label="best-of-N")
        axis.axhline(0.5, color="grey", linewidth=0.8)
        axis.set_ylim(0, 1)
        axis.set_xlabel("round")
        axis.set_ylabel("listener's win-rate over the prior")
        axis.legend()
        axis.grid(alpha=0.3)
        figure.tight_layout()
        paths.append(plot_dir / "win_rate.png")
        figure.savefig(paths[-1], dpi=110)
        plt.close(figure)
    return paths


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
