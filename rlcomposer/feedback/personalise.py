"""Melodies made for each rater of a study ("made for you"), and the blind A/B that tests them.

``rlcomposer study personalise NAME`` is organiser work, never done inside a rater's click.
It fits a personal reward model (:mod:`rlcomposer.preferences.personal_reward`) on the
study's comparisons, or takes one trained beforehand, and for each of the study's raters
with answers makes ``melodies`` melodies by best-of-``best_of`` under that rater's own reward
(tagged :func:`personal_tag`, ``personal:<study>:<rater id>``), and once per run as many by
best-of-``best_of`` under the population (pooled) model (tagged :func:`population_tag`,
``population:<study>``, shared by the run's raters). They are made in the metre, key, length
and pick-up of the study's own melodies (:func:`study_shape`), so they can be compared with
one another and scored by a reward model trained on the study.

A rater whose reward would be the population's (the model had no answers of theirs, or does
not know them) gets no melodies: a "made for you" melody that is the population's would
test nothing. The result says so, per rater. A rerun adds a new batch to the tags (another
``seed`` makes other melodies; the same seed and model make the same ones, which are not
stored twice): earlier melodies, and the answers about them, stay.

Tags starting with :data:`~rlcomposer.feedback.pool.PRIVATE_TAG_PREFIXES` are never part of
a study's "whole pool" (:meth:`~rlcomposer.feedback.pool.PoolStore.melody_ids`).

In the app, a rater who has completed the study opens "Made for you": pairs of one of their
personal melodies and one population melody (:func:`made_for_you_items`), shown on random
sides and unlabelled, answered and stored like any comparison of the study. An answer is an
A/B answer when its two melodies are of the rater's personal tag and the study's population
tag; :func:`made_for_you_results` counts them per rater: how often the personal melody was
preferred (ties ½, skips left out) with its 95% Wilson interval. They are not answers of the
study's set: the rater's progress and the study's (:func:`~rlcomposer.feedback.study.study_progress`,
the app's counts) leave out comparisons of made-for-you melodies. Training data taken from the
study (``reward train --study``) keeps them: a choice between the rater's melody and the
population's is a label of their taste like any other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlcomposer.confidence_intervals import wilson_interval
from rlcomposer.feedback.pool import (
    PERSONAL_PREFIX,
    POPULATION_PREFIX,
    check_tag,
)
from rlcomposer.feedback.selection import Item
from rlcomposer.feedback.storage import FeedbackError
from rlcomposer.feedback.store import FeedbackStore
from rlcomposer.feedback.study import Study
from rlcomposer.music.melody import Melody
from rlcomposer.preferences.choices import CHOICE_SCORE
from rlcomposer.preferences.labels import PairLabel, StarLabel, load_training_data

DEFAULT_BEST_OF = 54
"""Candidates per made-for-you melody: best-of-54 is about 3 nats from the prior
(``log N - (N - 1) / N``), where the personal reward was measured (``experiments/personal_eval.py``)."""
DEFAULT_MELODIES = 8
"""Made-for-you melodies per rater (and population melodies per run)."""


class PersonaliseError(FeedbackError):
    """A study that cannot be personalised (too few raters with answers, no melodies, a
    reward model that does not fit); nothing was stored."""


def personal_tag(study: str, rater_id: int) -> str:
    """The pool tag of the melodies made for rater ``rater_id`` in ``study``."""
    return _tag(f"{PERSONAL_PREFIX}{study}:{int(rater_id)}", study)


def population_tag(study: str) -> str:
    """The pool tag of the population model's melodies of ``study`` (the other side of the A/B)."""
    return _tag(f"{POPULATION_PREFIX}{study}", study)


def _tag(tag: str, study: str) -> str:
    try:
        return check_tag(tag)
    except FeedbackError:
        raise PersonaliseError(f"study name {study!r} is too long for a made-for-you tag ({tag!r})") from None


# --------------------------------------------------------------- the study
@dataclass(frozen=True)
class StudyShape:
    """How the study's melodies are barred and spelled: what made-for-you melodies copy."""

    metre: str
    tonic: str
    mode: str
    bars: int
    pickup_steps: int
    steps: int
    melodies: int
    """How many of the study's melodies have this shape (the most common one)."""

    @property
    def pickup_beats(self) -> float:
        return self.pickup_steps / 4

    @property
    def text(self) -> str:
        pickup = f" with a pick-up of {self.pickup_steps} sixteenths" if self.pickup_steps else ""
        return f"{self.bars} bars of {self.metre} in {self.tonic} {self.mode}{pickup}"


def study_shape(store: FeedbackStore, study: Study) -> StudyShape:
    """The most common shape (metre and length, then key and pick-up) of the study's melodies."""
    shapes = store.melody_shapes(list(study.spec.pool_tags) or None)
    if not shapes:
        raise PersonaliseError(f"study {study.name} has no melodies in its pool")
    (metre, steps), count = Counter(shapes.values()).most_common(1)[0]
    ids = [i for i, shape in shapes.items() if shape == (metre, steps)]
    melody = store.get_melody(min(ids)).melody
    bars = melody.num_bars
    if bars != int(bars) or not 1 <= bars <= 32:
        raise PersonaliseError(f"study {study.name}'s melodies are {steps} steps of {metre}: "
                               "made-for-you melodies need 1-32 whole bars after any pick-up")
    return StudyShape(metre, melody.key.tonic, melody.key.mode, int(bars), melody.pickup_steps, steps, count)


@dataclass(frozen=True)
class StudyAnswers:
    """The study's answers as training labels, and who gave them."""

    comparisons: list[PairLabel]
    stars: list[StarLabel]
    answered: dict[int, str]
    """Raters (id: name) with at least one answer (skips are not answers), by id."""

    def comparison_raters(self) -> list[str]:
        return sorted({c.rater for c in self.comparisons if c.choice in CHOICE_SCORE})


def study_answers(store: FeedbackStore, study: Study) -> StudyAnswers:
    """Every comparison and star rating given in ``study``, with its melodies as stored."""
    data = load_training_data(store, study_id=study.id)
    ids = {r.name: r.id for r in store.raters()}
    answered = {c.rater for c in data.comparisons if c.choice != "skip"} | {s.rater for s in data.stars}
    return StudyAnswers(data.comparisons, data.stars, {ids[name]: name for name in sorted(answered, key=ids.get)})


def check_personalisable(study: Study, answers: StudyAnswers) -> None:
    """Refuse a study whose comparisons come from fewer than two raters (one line)."""
    raters = answers.comparison_raters()
    if len(raters) < 2:
        who = f" ({raters[0]})" if raters else ""
        raise PersonaliseError(
            f"study {study.name} has comparisons from {len(raters)} rater{'' if len(raters) == 1 else 's'}{who}: "
            "made-for-you melodies need the answers of at least two raters (a personal reward model)")


def fit_study_model(answers: StudyAnswers, config: Any = None, personal: Any = None, prior: Any = None,
                    log: Callable[[str], None] | None = None):
    """A personal reward model trained on the study's answers (its raters with answers known)."""
    from rlcomposer.preferences.personal_reward import train_personal_reward_model
    from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig
    from rlcomposer.preferences.reward_model_config import RewardModelConfig

    return train_personal_reward_model(answers.comparisons, answers.stars, config or RewardModelConfig(),
                                       personal or PersonalRewardConfig(), prior,
                                       raters=list(answers.answered.values()), log=log)


# ------------------------------------------------------------ making them
@dataclass(frozen=True)
class RaterBatch:
    """What was made for one rater: ``made`` melodies (``added`` of them new to the tag), or
    none and ``note`` saying why (the rater's reward would be the population's)."""

    rater: str
    rater_id: int
    tag: str
    made: int = 0
    added: int = 0
    note: str | None = None


@dataclass(frozen=True)
class PersonaliseResult:
    """What ``study personalise`` made and stored."""

    study: str
    shape: StudyShape
    population_tag: str
    population_made: int
    population_added: int
    best_of: int
    raters: list[RaterBatch] = field(default_factory=list)

    @property
    def fallbacks(self) -> list[RaterBatch]:
        return [r for r in self.raters if r.note]

    def as_dict(self) -> dict[str, Any]:
        return {"study": self.study, "shape": self.shape.text, "metre": self.shape.metre, "best_of": self.best_of,
                "population": {"tag": self.population_tag, "made": self.population_made,
                               "added": self.population_added},
                "raters": [{"rater": r.rater, "rater_id": r.rater_id, "tag": r.tag, "made": r.made,
                            "added": r.added, "fell_back": r.note} for r in self.raters]}


def _reward_of(model: Any, rater: str) -> tuple[Any, str | None]:
    """``rater``'s reward from the personal model, or None and why it would be the population's."""
    from rlcomposer.preferences.reward_model_config import RewardModelError

    try:
        reward, note = model.for_rater(rater)
    except RewardModelError:
        return None, (f"the reward model does not know rater {rater!r} (trained before they answered): "
                      "their reward would be the population's")
    return (None, f"{note}; no made-for-you melodies") if note else (reward, None)


def personalise_study(store: FeedbackStore, study: Study, model: Any, base: Any,
                      best_of: int = DEFAULT_BEST_OF, melodies: int = DEFAULT_MELODIES, seed: int = 0,
                      answers: StudyAnswers | None = None,
                      progress: Callable[[str], None] | None = None) -> PersonaliseResult:
    """Make and store the made-for-you and population melodies of ``study`` (module docstring).

    ``model``: a :class:`~rlcomposer.preferences.personal_reward.PersonalRewardModel`; ``base``:
    the model the candidates are drawn from (a prior). Everything is made before anything is
    stored: an error stores nothing."""
    from rlcomposer.preferences.personal_reward import PersonalRewardModel
    from rlcomposer.prior.generation import GenerationConfig, sample_melodies
    from rlcomposer.rl.best_of_n import BestOfNModel

    if not isinstance(model, PersonalRewardModel):
        raise PersonaliseError("made-for-you melodies need a personal reward model "
                               "(`rlcomposer reward train --per-rater`)")
    for value, what in ((best_of, "--best-of"), (melodies, "--melodies")):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65_536:
            raise PersonaliseError(f"{what} {value!r} must be a whole number from 1 to 65536")
    answers = answers if answers is not None else study_answers(store, study)
    check_personalisable(study, answers)
    shape = study_shape(store, study)
    say = progress or (lambda _message: None)

    def make(reward: Any, name: str, offset: int) -> list[Melody]:
        config = GenerationConfig(num_melodies=melodies, seed=(seed * 1_000_003 + offset) % 2**31,
                                  num_bars=shape.bars, pickup_beats=shape.pickup_beats, metre=shape.metre,
                                  key=shape.tonic, mode=shape.mode)
        chosen = sample_melodies(BestOfNModel(base, reward, best_of, name), config)
        return [m.with_metadata(made_for=name) for m in chosen]

    made: list[tuple[RaterBatch, list[Melody]]] = []
    for rater_id, rater in answers.answered.items():
        tag = personal_tag(study.name, rater_id)
        reward, note = _reward_of(model, rater)
        if reward is None:
            made.append((RaterBatch(rater, rater_id, tag, note=note), []))
            continue
        say(f"making {melodies} melodies for {rater} (best-of-{best_of})")
        made.append((RaterBatch(rater, rater_id, tag), make(reward, f"rater {rater!r}", 1 + rater_id)))
    if all(not batch for _, batch in made):
        raise PersonaliseError(f"study {study.name}: no rater has a reward of their own in this model "
                               "(every one would be the population's); nothing made")
    pop_tag = population_tag(study.name)
    say(f"making {melodies} melodies for the population (best-of-{best_of})")
    population = make(model.population, "the population", 0)
    model_name = getattr(base, "name", "prior")
    stored = store.add_melodies(population, pop_tag, model=f"best-of-{best_of}({model_name}) population",
                                model_kind="best-of-n")
    batches = []
    for batch, chosen in made:
        if chosen:
            added = store.add_melodies(chosen, batch.tag, model=f"best-of-{best_of}({model_name}) {batch.tag}",
                                       model_kind="best-of-n").added
            batch = RaterBatch(batch.rater, batch.rater_id, batch.tag, len(chosen), added)
        batches.append(batch)
    return PersonaliseResult(study.name, shape, pop_tag, len(population), stored.added, best_of, batches)


# ------------------------------------------------------------------ the A/B
@dataclass(frozen=True)
class MadeForYou:
    """A rater's made-for-you pairs: ``items`` not answered yet (personal melody first; the app
    shows each on a random side), how many melodies were made for them and how many pairs they answered."""

    items: list[Item]
    made: int
    answered: int

    @property
    def ready(self) -> bool:
        return self.made > 0


def made_for_you_items(store: FeedbackStore, study: Study, rater_id: int) -> MadeForYou:
    """Pairs of (one of the rater's personal melodies, one population melody) of ``study``,
    newest first, each melody in one pair only and none the rater has already met in an A/B;
    reads the pool, never a model (quick enough for a click)."""
    personal = store.melody_ids([personal_tag(study.name, rater_id)])[::-1]
    population = store.melody_ids([population_tag(study.name)])[::-1]
    if not personal:
        return MadeForYou([], 0, 0)
    mine, theirs = set(personal), set(population)
    met = [p for p in store.compared_pairs(rater_id) if len(p & mine) == 1 and len(p & theirs) == 1]
    used = set().union(*met) if met else set()
    shapes = store.melody_shapes([personal_tag(study.name, rater_id), population_tag(study.name)])
    free_population = [q for q in population if q not in used]
    items = []
    for p in personal:
        if p in used:
            continue
        match = next((q for q in free_population if shapes.get(q) == shapes.get(p)), None)
        if match is None:
            continue
        free_population.remove(match)
        items.append(Item("pair", (p, match)))
    return MadeForYou(items, len(personal), len(met))


@dataclass(frozen=True)
class MadeForYouRow:
    """One rater's A/B answers: how often their personal melody was preferred."""

    rater: str
    made: int
    """Melodies made for them."""
    answers: int
    """A/B answers (skips left out)."""
    personal_wins: float
    """Answers preferring the personal melody (ties ½)."""
    skips: int

    @property
    def share(self) -> float | None:
        return self.personal_wins / self.answers if self.answers else None

    @property
    def interval(self) -> tuple[float, float]:
        """The share's 95% Wilson interval ((0, 1) before any answer)."""
        return wilson_interval(self.personal_wins, self.answers)


def made_for_you_results(store: FeedbackStore, study: Study) -> tuple[list[MadeForYouRow], MadeForYouRow]:
    """Per rater with made-for-you melodies or A/B answers in ``study``: the answers and the
    personal preferred share; and the total over them (rater ``"total"``)."""
    tags = dict(store.tags())
    prefix = f"{PERSONAL_PREFIX}{study.name}:"
    pop = population_tag(study.name)
    tag_of = store.melody_tags()
    names = {r.id: r.name for r in store.raters()}
    rows: dict[int, dict[str, Any]] = {}
    for tag, count in tags.items():
        if tag.startswith(prefix) and tag[len(prefix):].isdigit():
            rows.setdefault(int(tag[len(prefix):]), {"made": 0, "answers": 0, "wins": 0.0, "skips": 0})["made"] = count
    for c in store.comparisons():
        if c.study_id != study.id:
            continue
        mine = personal_tag(study.name, c.rater_id)
        sides = (tag_of.get(c.melody_a_id), tag_of.get(c.melody_b_id))
        if set(sides) != {mine, pop}:
            continue
        row = rows.setdefault(c.rater_id, {"made": 0, "answers": 0, "wins": 0.0, "skips": 0})
        if c.choice == "skip":
            row["skips"] += 1
            continue
        score_a = CHOICE_SCORE[c.choice]
        row["answers"] += 1
        row["wins"] += score_a if sides[0] == mine else 1 - score_a
    result = [MadeForYouRow(names.get(i, f"rater {i}"), r["made"], r["answers"], r["wins"], r["skips"])
              for i, r in sorted(rows.items(), key=lambda kv: names.get(kv[0], "").casefold())]
    total = MadeForYouRow("total", sum(r.made for r in result), sum(r.answers for r in result),
                          sum(r.personal_wins for r in result), sum(r.skips for r in result))
    return result, total


def is_made_for_you_tag(tag: str | None) -> bool:
    return isinstance(tag, str) and tag.startswith((PERSONAL_PREFIX, POPULATION_PREFIX))


__all__ = [
    "DEFAULT_BEST_OF", "DEFAULT_MELODIES", "MadeForYou", "MadeForYouRow", "PersonaliseError", "PersonaliseResult",
    "RaterBatch", "StudyAnswers", "StudyShape", "check_personalisable", "fit_study_model", "is_made_for_you_tag",
    "made_for_you_items", "made_for_you_results", "personal_tag", "personalise_study", "population_tag",
    "study_answers", "study_shape",
]
