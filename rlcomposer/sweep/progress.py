"""One line per trial while a sweep runs: a Ray Tune callback (imports Ray: load it after
:func:`~rlcomposer.sweep.runner.require_ray`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ray.tune import Callback


class ProgressLines(Callback):
    """Prints a line when a trial starts, finishes (with its win-rate and KL) or fails."""

    def __init__(self, total: int, say: Callable[[str], None]):
        self.total = total
        self.say = say
        self.started: dict[str, float] = {}

    def __getstate__(self):  # Ray Tune pickles its callbacks with the experiment: keep no closures
        return {**self.__dict__, "say": print}

    @staticmethod
    def _name(trial) -> str:
        return (trial.config or {}).get("trial", {}).get("name", str(trial))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.monotonic()
        self.say(f"trial {self._name(trial)}: started ({_finished(trials)} of {self.total} finished)")

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        seconds = result.get("wall_seconds") or time.monotonic() - self.started.get(trial.trial_id, time.monotonic())
        self.say(f"trial {self._name(trial)}: done in {seconds:.0f} s; win-rate {_fmt(result.get('win_rate'))} "
                 f"(KL {_fmt(result.get('kl'), 2)}), best-of-{result.get('best_of_n', '?')} "
                 f"{_fmt(result.get('best_of_n_win_rate'))}; {_finished(trials) + 1} of {self.total} finished")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(f"trial {self._name(trial)}: FAILED ({first_error_line(trial)})")


def _finished(trials) -> int:
    return sum(t.status == "TERMINATED" for t in trials)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def first_error_line(trial) -> str:
    """The last line naming an error in a failed trial's error file."""
    path = getattr(trial, "error_file", None) or ""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError:
        return "see the trial's trial.log"
    errors = [line for line in lines if "Error" in line.split(":", 1)[0]]
    return (errors[-1] if errors else lines[-1] if lines else "unknown error").strip()[:300]
