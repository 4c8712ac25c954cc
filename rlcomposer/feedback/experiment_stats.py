"""How experiments fare with people: what the dashboard shows per experiment.

An experiment (``rlcomposer experiment run``) registers each round's reward
model in the rating database (kind ``reward-model``, name
``NAME/round-K/reward-model``, config ``{"experiment": NAME, "round": K}``, path
= its directory) and puts each round's pool under the tag ``NAME/round-K``:
round 0's pool comes from the prior, round K's (K ≥ 1) from the policy tuned in
round K-1. From that, and from the judgements of raters of kind ``person``
(simulated listeners are left out), this module computes:

* :func:`reward_model_accuracy_on_people` — how often a reward model agrees
  with people's A/B choices (accuracy over decided comparisons; ties and skips
  left out of it), with the log-loss (ties count as ½; skips left out);
* :func:`latest_reward_models` — per experiment, the registered reward model of
  the highest round that loads (a missing or corrupt directory is skipped and
  the reason reported, never raised);
* :func:`people_win_rates` — per experiment and round K ≥ 1, people's win-rate
  of the round-K pool (the tuned policy's melodies) against the round-0 pool
  (the prior's), over comparisons between exactly those two tags (ties ½, skips
  ignored), with the counts;
* :func:`experiment_summaries` — all three together, one entry per experiment.

Deliberate repeats (``is_repeat``) are left out everywhere, as in
:func:`~rlcomposer.feedback.statistics.tag_win_rates`, so a repeated
pair counts once. Reward models load through
:mod:`rlcomposer.preferences.reward_model_cache` (once per directory and
process, since the dashboard reruns on every click).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.store import FeedbackStore
from rlcomposer.preferences.choices import CHOICE_SCORE
from rlcomposer.preferences.reward_model_cache import cached_scores, load_reward_model_cached

PERSON = "person"
REWARD_MODEL_KIND = "reward-model"
_ROUND_TAG = re.compile(r"^(?P<experiment>.+)/round-(?P<round>\d+)$")
_REWARD_MODEL_NAME = re.compile(r"^(?P<experiment>.+)/round-(?P<round>\d+)/reward-model$")


def round_tag(experiment: str, round_index: int) -> str:
    """The pool tag of an experiment's round (as :mod:`rlcomposer.experiments.loop` writes it)."""
    return f"{experiment}/round-{round_index}"


def parse_round_tag(tag: str) -> tuple[str, int] | None:
    """``(experiment, round)`` of a tag ``NAME/round-K``, or None for any other tag."""
    match = _ROUND_TAG.match(tag)
    return None if match is None else (match["experiment"], int(match["round"]))


def _resolve_ensemble(reward_model):
    if isinstance(reward_model, (str, Path)):
        return load_reward_model_cached(reward_model)
    if not hasattr(reward_model, "score_batch"):
        raise RLComposerError(f"{reward_model!r} is neither a reward-model directory nor a reward ensemble")
    return reward_model


# ---------------------------------------------------------------- accuracy
def _people_ids(store: FeedbackStore) -> set[int]:
    return {r.id for r in store.raters() if r.kind == PERSON}


def _belongs(record, experiment: str) -> bool:
    parsed = parse_round_tag(record.tag)
    return record.experiment == experiment or (parsed is not None and parsed[0] == experiment)


def reward_model_accuracy_on_people(store: FeedbackStore, reward_model, experiment: str | None = None
                                    ) -> dict[str, Any]:
    """How well ``reward_model`` (a reward-model directory or a loaded ensemble)
    predicts people's A/B choices.

    Uses every comparison by a rater of kind ``person`` (deliberate repeats left
    out); with ``experiment``, only those where both melodies belong to that
    experiment (its ``NAME/round-K`` pools). Returns ``accuracy`` (share of
    decided comparisons, A or B, where the model's P(A beats B) is on the
    person's side; None without any), ``decided``, ``ties``, ``skips``,
    ``comparisons`` (decided + ties), ``log_loss`` (over decided comparisons
    and ties, a tie's target being ½; None without any), ``raters`` (how
    many people) and ``other_shapes`` (comparisons left out because the reward
    model was not trained on their melodies' metre, length or pick-up)."""
    people = _people_ids(store)
    rows = [c for c in store.comparisons() if c.rater_id in people and not c.is_repeat]
    if rows and experiment is not None:
        records = store.get_melodies({c.melody_a_id for c in rows} | {c.melody_b_id for c in rows})
        rows = [c for c in rows if _belongs(records[c.melody_a_id], experiment)
                and _belongs(records[c.melody_b_id], experiment)]
    skips = sum(c.choice == "skip" for c in rows)
    judged = [c for c in rows if c.choice in CHOICE_SCORE]
    ensemble = _resolve_ensemble(reward_model) if judged else None
    other_shapes = 0
    accepts = getattr(ensemble, "accepts", None)
    if accepts is not None:  # a reward model scores melodies of the shapes it was trained on only
        records = store.get_melodies({c.melody_a_id for c in judged} | {c.melody_b_id for c in judged})
        kept = [c for c in judged if accepts(records[c.melody_a_id].melody) and accepts(records[c.melody_b_id].melody)]
        other_shapes, judged = len(judged) - len(kept), kept
    result: dict[str, Any] = {
        "experiment": experiment, "comparisons": len(judged),
        "decided": sum(c.choice != "tie" for c in judged), "ties": sum(c.choice == "tie" for c in judged),
        "skips": skips, "raters": len({c.rater_id for c in judged}), "accuracy": None, "log_loss": None,
        "other_shapes": other_shapes,
    }
    if not judged:
        return result
    ids = sorted({c.melody_a_id for c in judged} | {c.melody_b_id for c in judged})
    cache = cached_scores(ensemble)
    missing = [i for i in ids if (store.url, i) not in cache]
    if missing:
        records = store.get_melodies(missing)
        scores = np.asarray(ensemble.score_batch([records[i].melody for i in missing]), dtype=np.float64)
        cache.update(((store.url, i), s) for i, s in zip(missing, scores.tolist(), strict=True))
    diff = np.array([cache[(store.url, c.melody_a_id)] - cache[(store.url, c.melody_b_id)] for c in judged])
    probability = np.clip(1.0 / (1.0 + np.exp(-np.clip(diff, -50, 50))), 1e-6, 1 - 1e-6)
    target = np.array([CHOICE_SCORE[c.choice] for c in judged])
    result["log_loss"] = float(-np.mean(target * np.log(probability) + (1 - target) * np.log(1 - probability)))
    decided = target != 0.5
    if decided.any():
        p, y = probability[decided], target[decided]
        correct = np.where(p == 0.5, 0.5, ((p > 0.5) == (y == 1)).astype(np.float64))
        result["accuracy"] = float(correct.mean())
    return result


# ------------------------------------------------------ latest reward models
@dataclass
class LatestRewardModel:
    """An experiment's newest usable reward model (``ensemble`` None when none loads)."""

    experiment: str
    round: int | None = None
    name: str | None = None
    path: str | None = None
    ensemble: Any = field(default=None, repr=False)
    problems: list[str] = field(default_factory=list)
    """Why newer (or all) registered reward models were skipped: missing or corrupt directories."""


def _registered_reward_models(store: FeedbackStore) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    found: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for model in store.models():
        if model["kind"] != REWARD_MODEL_KIND:
            continue
        config = model["config"] if isinstance(model["config"], dict) else {}
        experiment, round_index = config.get("experiment"), config.get("round")
        match = _REWARD_MODEL_NAME.match(model["name"])
        if not isinstance(experiment, str) and match:
            experiment = match["experiment"]
        if (not isinstance(round_index, int) or isinstance(round_index, bool)) and match:
            round_index = int(match["round"])
        if isinstance(experiment, str) and isinstance(round_index, int):
            found[experiment].append((round_index, model))
    return found


def latest_reward_models(store: FeedbackStore) -> list[LatestRewardModel]:
    """Per experiment (by name), the registered reward model of the highest round that loads.

    A reward model whose directory is missing or corrupt is skipped (the reason
    goes to ``problems``) and the round before it is tried; when none loads the
    entry has ``ensemble=None``. Never raises for a bad directory."""
    result = []
    for experiment, registered in sorted(_registered_reward_models(store).items()):
        entry = LatestRewardModel(experiment)
        for round_index, model in sorted(registered, key=lambda r: -r[0]):
            if not model["path"]:
                entry.problems.append(f"{model['name']}: no directory registered")
                continue
            try:
                ensemble = load_reward_model_cached(model["path"])
            except (RLComposerError, OSError, ValueError, RuntimeError) as error:
                entry.problems.append(f"{model['name']}: cannot load {model['path']} ({error})")
                continue
            entry.round, entry.name, entry.path, entry.ensemble = round_index, model["name"], model["path"], ensemble
            break
        result.append(entry)
    return result


def latest_reward_model_path(store: FeedbackStore, tags: Sequence[str] = ()) -> str | None:
    """The directory of the newest loadable reward model of the experiment that the
    pool ``tags`` (``NAME/round-K``) belong to; with no tags, of the only experiment
    that has one. None when there is no such reward model."""
    names = {tag.rsplit("/round-", 1)[0] for tag in tags if "/round-" in tag}
    loaded = [entry for entry in latest_reward_models(store) if entry.ensemble is not None]
    if names:
        loaded = [entry for entry in loaded if entry.experiment in names]
    elif len(loaded) != 1:
        return None
    return loaded[0].path if loaded else None


# ------------------------------------------------------------ win-rates
@dataclass(frozen=True)
class RoundWinRate:
    """People's verdict on one round's pool (the tuned policy) against round 0's (the prior)."""

    experiment: str
    round: int
    """K ≥ 1: the pool tagged ``NAME/round-K``, sampled from the policy tuned in round K-1."""
    tuned_tag: str
    prior_tag: str
    win_rate: float | None
    """Share of comparisons the tuned policy's melody won (ties ½, skips ignored); None without any."""
    comparisons: int
    """Comparisons counted (wins + ties + losses)."""
    wins: int
    ties: int
    losses: int
    skips: int
    raters: int

    @property
    def policy(self) -> str:
        return f"{self.experiment}/round-{self.round - 1}/policy"


def people_win_rates(store: FeedbackStore) -> list[RoundWinRate]:
    """Per experiment and round K ≥ 1 with a pool, people's win-rate of the
    round-K pool against the round-0 pool, over comparisons (by raters of kind
    ``person``, repeats left out) with one melody of each of those two tags.
    Rounds without such comparisons are listed with ``win_rate=None``."""
    rounds: dict[str, set[int]] = defaultdict(set)
    tag_of: dict[int, str] = {}
    for tag, _count in store.tags():
        parsed = parse_round_tag(tag)
        if parsed is not None:
            rounds[parsed[0]].add(parsed[1])
    wanted = {round_tag(e, k) for e, ks in rounds.items() for k in ks}
    if wanted:
        for tag in sorted(wanted):
            tag_of.update((i, tag) for i in store.melody_ids([tag]))
    people = _people_ids(store)
    tally: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"wins": 0, "ties": 0, "losses": 0, "skips": 0, "raters": set()})
    for c in store.comparisons():
        if c.rater_id not in people or c.is_repeat:
            continue
        ta, tb = tag_of.get(c.melody_a_id), tag_of.get(c.melody_b_id)
        if ta is None or tb is None:
            continue
        pa, pb = parse_round_tag(ta), parse_round_tag(tb)
        if pa[0] != pb[0] or min(pa[1], pb[1]) != 0 or max(pa[1], pb[1]) == 0:
            continue
        tuned_is_a = pa[1] != 0
        counts = tally[(pa[0], pa[1] if tuned_is_a else pb[1])]
        if c.choice == "skip":
            counts["skips"] += 1
            continue
        counts["raters"].add(c.rater_id)
        if c.choice == "tie":
            counts["ties"] += 1
        elif (c.choice == "a") == tuned_is_a:
            counts["wins"] += 1
        else:
            counts["losses"] += 1
    result = []
    for experiment in sorted(rounds):
        if 0 not in rounds[experiment]:
            continue
        for k in sorted(r for r in rounds[experiment] if r >= 1):
            counts = tally.get((experiment, k), {"wins": 0, "ties": 0, "losses": 0, "skips": 0, "raters": set()})
            n = counts["wins"] + counts["ties"] + counts["losses"]
            result.append(RoundWinRate(
                experiment, k, round_tag(experiment, k), round_tag(experiment, 0),
                (counts["wins"] + 0.5 * counts["ties"]) / n if n else None, n,
                counts["wins"], counts["ties"], counts["losses"], counts["skips"], len(counts["raters"])))
    return result


# -------------------------------------------------------------- summaries
@dataclass
class ExperimentSummary:
    """What the dashboard shows for one experiment."""

    experiment: str
    reward_model: LatestRewardModel | None
    """The newest usable reward model (None: the experiment registered none)."""
    accuracy: dict[str, Any] | None
    """:func:`reward_model_accuracy_on_people` of that model on the experiment's comparisons (None: no model loads)."""
    win_rates: list[RoundWinRate]
    """One entry per round K ≥ 1 with a pool."""


def experiment_summaries(store: FeedbackStore) -> list[ExperimentSummary]:
    """Every experiment the database knows (from reward models or ``NAME/round-K`` pools), by name."""
    models = {m.experiment: m for m in latest_reward_models(store)}
    rates: dict[str, list[RoundWinRate]] = defaultdict(list)
    for row in people_win_rates(store):
        rates[row.experiment].append(row)
    names = set(models) | set(rates) | {p[0] for t, _ in store.tags() if (p := parse_round_tag(t))}
    summaries = []
    for name in sorted(names):
        model = models.get(name)
        accuracy = None
        if model is not None and model.ensemble is not None:
            accuracy = reward_model_accuracy_on_people(store, model.ensemble, experiment=name)
        summaries.append(ExperimentSummary(name, model, accuracy, rates.get(name, [])))
    return summaries


__all__ = [
    "ExperimentSummary", "LatestRewardModel", "RoundWinRate",
    "experiment_summaries", "latest_reward_models", "parse_round_tag",
    "people_win_rates", "reward_model_accuracy_on_people", "round_tag",
]
