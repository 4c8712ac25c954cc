"""A listening study: what a group of raters rates, how much, and what they read.

A study is a row of the ``studies`` table (:class:`StudySpec` is its settings, checked
here with messages that name the setting): the pool tags its items come from, the
mode (``stars``: 1-5 stars for one melody; ``pairs``: A/B between two melodies of the
pool; ``mixed-tags``: A/B where each pair has one melody of each of exactly two tags,
e.g. a tuned policy's pool against the prior's), how many items each rater answers,
the instructions and consent text, how items are chosen (``random``, or ``active``
with a reward model: a directory, or ``latest`` for the newest one that ``rlcomposer
experiment run`` registered for the tags' experiment; a personal reward model's directory,
from ``reward train --per-rater``, chooses each rater's pairs by that rater's own
uncertainty), an optional completion code
shown at the end, and how much of each melody must have played before the answer
buttons open (``listen_fraction``).

The app serves one study per URL (``?study=NAME``); ``rlcomposer study create|list|close``
manage them; :func:`study_progress` is what the organiser sees.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.schema import STUDY_MODES, STUDY_SELECTIONS
from rlcomposer.feedback.selection import (
    ActiveSelection,
    CrossTagSelection,
    RandomSelection,
    SelectionStrategy,
)
from rlcomposer.feedback.store import FeedbackError, FeedbackStore, check_tag
from rlcomposer.feedback.studies import StudyError

DEFAULT_STUDY = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
PAIRS_INSTRUCTIONS = (
    "You will hear pairs of short melodies written by a computer. Press play and listen to both "
    "melodies, A and B; the answer buttons open once both have played. Then say which one you "
    "prefer, or that they are about the same. There are no right answers: we want your taste. "
    "Keyboard: A, B, = (about the same), S (skip); space plays.")
STARS_INSTRUCTIONS = (
    "You will hear short melodies written by a computer. Press play and listen to each one; "
    "the answer buttons open once it has played. Then say how much you like it, from 1 star "
    "(not at all) to 5 stars (love it). There are no right answers: we want your taste. "
    "Keyboard: 1-5 for stars; space plays.")
DEFAULT_INSTRUCTIONS = PAIRS_INSTRUCTIONS
"""The instructions of a pairs study (the default mode); :func:`default_instructions` per mode."""


def default_instructions(mode: str) -> str:
    """What raters of a study of ``mode`` read when the organiser wrote no instructions."""
    return STARS_INSTRUCTIONS if mode == "stars" else PAIRS_INSTRUCTIONS
DEFAULT_CONSENT = ("I agree that my answers (with my rater name, not my identity) are stored and used "
                   "to train and evaluate melody models.")


@dataclass(frozen=True)
class StudySpec:
    """The settings of one listening study (what ``rlcomposer study create`` stores)."""

    name: str
    """The study's name, used in its URL (``?study=NAME``): letters, digits and ``_.:/-``."""
    pool_tags: tuple[str, ...] = ()
    """Pool tags the items come from (empty: the whole pool; ``mixed-tags`` needs exactly two)."""
    mode: str = "pairs"
    """``stars`` (one melody, 1-5 stars), ``pairs`` (A/B) or ``mixed-tags`` (A/B, one melody of each tag)."""
    items_per_rater: int = 20
    """How many answers (skips do not count) complete the study for one rater."""
    instructions: str = ""
    """What raters read before they start (plain text); empty: the mode's own
    (:func:`default_instructions`: a pairs study never mentions stars)."""
    consent_text: str = DEFAULT_CONSENT
    """The line raters agree to before they start."""
    selection: str = "random"
    """``random``, or ``active`` (pairs where the reward model's ensemble disagrees most; with a
    personal reward model, where it is least sure of the asking rater's own taste)."""
    reward_model: str | None = None
    """For ``active``: a reward-model directory, or ``latest`` (the newest of the tags' experiment)."""
    completion_code: str | None = None
    """Shown on the completion screen (e.g. for a crowdsourcing platform); None: no code."""
    listen_fraction: float = 1.0
    """Share of each melody's audio that must have played before the answer buttons open (0 disables)."""
    repeat_share: float = 0.05
    """Share of deliberate repeats that measure each rater's self-consistency (0-0.5)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise StudyError(f"study name {self.name!r} must be 1-100 letters, digits or '_.:/-', "
                             "starting with a letter or digit")
        object.__setattr__(self, "pool_tags", tuple(self.pool_tags))
        if isinstance(self.instructions, str) and not self.instructions.strip():
            object.__setattr__(self, "instructions", default_instructions(self.mode))
        for tag in self.pool_tags:
            try:
                check_tag(tag)
            except FeedbackError as error:
                raise StudyError(f"study {self.name}: {error}") from None
        if self.mode not in STUDY_MODES:
            raise StudyError(f"study mode {self.mode!r} must be one of {', '.join(STUDY_MODES)}")
        if self.mode == "mixed-tags" and (len(self.pool_tags) != 2 or self.pool_tags[0] == self.pool_tags[1]):
            raise StudyError(f"study mode mixed-tags needs exactly two different pool tags "
                             f"(got {', '.join(self.pool_tags) or 'none'})")
        if isinstance(self.items_per_rater, bool) or not isinstance(self.items_per_rater, int) \
                or not 1 <= self.items_per_rater <= 10_000:
            raise StudyError(f"items per rater {self.items_per_rater!r} must be a whole number from 1 to 10000")
        if self.selection not in STUDY_SELECTIONS:
            raise StudyError(f"study selection {self.selection!r} must be one of {', '.join(STUDY_SELECTIONS)}")
        if self.selection == "active" and not self.reward_model:
            raise StudyError("active selection needs a reward model (a directory, or 'latest')")
        if self.selection == "active" and self.mode == "mixed-tags":
            raise StudyError("mixed-tags pairs are chosen at random: active selection cannot be used with them")
        if self.completion_code is not None and (not self.completion_code.strip()
                                                 or len(self.completion_code) > 64):
            raise StudyError("the completion code must be 1-64 characters")
        if not 0.0 <= float(self.listen_fraction) <= 1.0:
            raise StudyError(f"listen fraction {self.listen_fraction} must be between 0 and 1")
        if not 0.0 <= float(self.repeat_share) <= 0.5:
            raise StudyError(f"repeat share {self.repeat_share} must be between 0 and 0.5")
        for text, what in ((self.instructions, "instructions"), (self.consent_text, "consent text")):
            if not isinstance(text, str) or len(text) > 10_000:
                raise StudyError(f"the study's {what} must be text of at most 10000 characters")

    @property
    def kind(self) -> str:
        """The item kind the study's raters answer: ``single`` (stars) or ``pair``."""
        return "single" if self.mode == "stars" else "pair"


@dataclass(frozen=True)
class Study:
    """A stored study: its settings, id and state."""

    id: int
    spec: StudySpec
    status: str
    created_at: datetime
    closed_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_open(self) -> bool:
        return self.status == "open"


def _from_row(row: dict[str, Any]) -> Study:
    fields = {k: row[k] for k in StudySpec.__dataclass_fields__}
    fields["pool_tags"] = tuple(fields["pool_tags"] or ())
    return Study(row["id"], StudySpec(**fields), row["status"], row["created_at"], row["closed_at"])


def _settings(spec: StudySpec) -> dict[str, Any]:
    """The study's columns other than its name."""
    values = asdict(spec)
    values.pop("name")
    values["pool_tags"] = list(spec.pool_tags)
    return values


def create_study(store: FeedbackStore, spec: StudySpec) -> Study:
    """Store ``spec`` as a new, open study. Refused when the name is taken or when a pool
    tag has no melodies (a study whose pool is empty could serve nothing)."""
    known = dict(store.tags())
    empty = [t for t in spec.pool_tags if not known.get(t)]
    if empty:
        raise StudyError(f"study {spec.name}: pool tag {empty[0]!r} has no melodies "
                         "(add some with `rlcomposer pool add`)")
    if not spec.pool_tags and not known:
        raise StudyError(f"study {spec.name}: the pool is empty (add melodies with `rlcomposer pool add`)")
    store.create_study(spec.name, **_settings(spec))
    return get_study(store, spec.name)


def get_study(store: FeedbackStore, name: str) -> Study:
    """The study called ``name``; :class:`StudyError` naming it when there is none."""
    row = store.get_study(name)
    if row is None:
        raise StudyError(f"there is no study called {name!r}")
    return _from_row(row)


def find_study(store: FeedbackStore, name: str) -> Study | None:
    row = store.get_study(name)
    return None if row is None else _from_row(row)


def list_studies(store: FeedbackStore) -> list[Study]:
    """Every study, oldest first."""
    return [_from_row(row) for row in store.studies()]


def close_study(store: FeedbackStore, name: str) -> Study:
    """Close a study: its page says so and it takes no more answers."""
    return _from_row(store.set_study_status(name, "closed"))


def reopen_study(store: FeedbackStore, name: str) -> Study:
    return _from_row(store.set_study_status(name, "open"))


def ensure_study(store: FeedbackStore, spec: StudySpec) -> Study:
    """The study called ``spec.name``: created with ``spec`` when missing, else the stored one
    (whose settings win: a study's settings do not change under its raters)."""
    existing = find_study(store, spec.name)
    return existing if existing is not None else create_study(store, spec)


def default_study(store: FeedbackStore, spec: StudySpec) -> Study:
    """The study served at the app's plain address (``spec.name`` is :data:`DEFAULT_STUDY`):
    made from the app's settings the first time; after that the stored study wins, so a study
    called ``default`` made with ``rlcomposer study create`` keeps its settings, and a closed
    one stays closed."""
    return ensure_study(store, spec)


def sync_study(store: FeedbackStore, spec: StudySpec) -> Study:
    """The study ``spec.name`` with exactly ``spec``'s settings: created, or updated when they
    differ (for the default study, which follows the app's settings)."""
    existing = find_study(store, spec.name)
    if existing is None:
        try:
            return create_study(store, spec)
        except FeedbackError:
            existing = find_study(store, spec.name)  # made by another process meanwhile
            if existing is None:
                raise
    if existing.spec != spec:
        store.update_study(spec.name, **_settings(spec))
        existing = get_study(store, spec.name)
    return existing


def study_url(name: str, base_url: str = "http://localhost:8501") -> str:
    """The address raters open for study ``name``."""
    return f"{base_url.rstrip('/')}/?study={quote(name, safe='')}"


def rater_link(store: FeedbackStore, study_name: str, rater_name: str,
               base_url: str = "http://localhost:8501") -> str:
    """A new personal link of the rater called ``rater_name`` for study ``study_name`` (a lost
    link): it signs them back in, and their old link stops working."""
    study = get_study(store, study_name)
    _, token = store.new_sign_in_token(rater_name)
    return f"{study_url(study.name, base_url)}&token={quote(token, safe='')}"


def study_pool_problem(store: FeedbackStore, study: Study) -> str | None:
    """Why the study cannot serve items (in words), or None when its pool has melodies."""
    known = dict(store.tags())
    if not study.spec.pool_tags:
        return None if known else "the pool is empty"
    empty = [t for t in study.spec.pool_tags if not known.get(t)]
    if study.spec.mode == "mixed-tags" and empty:
        return f"pool tag {empty[0]!r} has no melodies"
    if len(empty) == len(study.spec.pool_tags):
        return f"its pool tags ({', '.join(study.spec.pool_tags)}) have no melodies"
    return None


@dataclass
class StudySelection:
    """The selection strategy a study's settings call for (one per browser session)."""

    study: Study
    load_reward_model: Any = None
    """``directory -> RewardEnsemble``, or a ``PersonalRewardModel`` for a personal model's directory
    (then each rater's pairs follow that rater's own uncertainty; the app passes its per-process cache,
    :func:`~rlcomposer.preferences.reward_model_cache.load_reward_model_cached`, which loads both);
    None: never active."""
    latest_reward_model: Any = None
    """``(store, tags) -> directory or None`` for ``reward_model: latest``."""
    note: str = field(default="", init=False)
    """Why active selection is off, when it is (empty otherwise; a rater of a personal model who falls
    back to the population's uncertainty is told by the strategy's own ``note``)."""

    def strategy(self, store: FeedbackStore) -> SelectionStrategy:
        spec = self.study.spec
        if spec.mode == "mixed-tags":
            return CrossTagSelection(repeat_share=spec.repeat_share, tags=spec.pool_tags)
        if spec.selection == "active" and self.load_reward_model is not None:
            directory = spec.reward_model
            if directory == "latest":
                directory = self.latest_reward_model(store, spec.pool_tags) if self.latest_reward_model else None
            if not directory:
                self.note = "no experiment of these tags has a reward model yet"
            else:
                try:
                    return ActiveSelection(self.load_reward_model(directory), tags=spec.pool_tags)
                except (RLComposerError, OSError, ValueError, RuntimeError) as error:
                    self.note = str(error)
        return RandomSelection(repeat_share=spec.repeat_share, tags=spec.pool_tags)


@dataclass(frozen=True)
class StudyProgress:
    """How far a study is: raters, answers, completion."""

    name: str
    status: str
    items_per_rater: int
    raters: int
    """People with at least one answer or skip in the study."""
    completed: int
    """Raters who reached ``items_per_rater`` answers."""
    answers: int
    skips: int

    @property
    def completion(self) -> float | None:
        """Share of the study's raters who completed it (None before anyone answered)."""
        return self.completed / self.raters if self.raters else None


def study_progress(store: FeedbackStore, study: Study, kind: str = "person") -> StudyProgress:
    """Raters (of ``kind``: ``person`` or ``simulated``), answers and completion of ``study``:
    the answers of its set, never the "made for you" A/B a rater answers after finishing
    (:meth:`~rlcomposer.feedback.answers.AnswerStore.study_answer_counts`)."""
    kinds = {r.id: r.kind for r in store.raters()}
    counts = {r: c for r, c in store.study_answer_counts(study.id).items() if kinds.get(r) == kind}
    return StudyProgress(
        study.name, study.status, study.spec.items_per_rater, len(counts),
        sum(c["answered"] >= study.spec.items_per_rater for c in counts.values()),
        sum(c["answered"] for c in counts.values()), sum(c["skips"] for c in counts.values()))


__all__ = [
    "DEFAULT_CONSENT", "DEFAULT_INSTRUCTIONS", "DEFAULT_STUDY", "PAIRS_INSTRUCTIONS", "STARS_INSTRUCTIONS",
    "default_instructions", "default_study", "rater_link", "Study", "StudyError", "StudyProgress",
    "StudySelection", "StudySpec", "close_study", "create_study", "ensure_study", "find_study", "get_study",
    "list_studies", "reopen_study", "study_pool_problem", "sync_study", "study_progress", "study_url",
]
