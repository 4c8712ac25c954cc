"""The pool: the melodies raters hear (each under a tag, with its provenance) and the
models that wrote them.

A melody is stored once per tag (by the SHA-1 of its tokens, :func:`tokens_sha1`). How
to bar and spell it is kept in its row's metadata when it is not the default: ``metre``
(``"6/8"``) and ``key`` (``{"tonic": "G", "mode": "major"}``) unless 4/4 in C major,
``pickup_steps`` unless 0. Reading a melody back gives it all three
(:class:`MelodyRecord`), or a :class:`FeedbackError` of one line naming the melody when
what is stored cannot be read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.schema import Model, StarRating, StoredMelody, utcnow
from rlcomposer.feedback.storage import FeedbackError, StoreBase, check_id
from rlcomposer.music.keys import DEFAULT_KEY, Key
from rlcomposer.music.melody import Melody
from rlcomposer.music.metre import Metre, check_pickup_steps, parse_metre

MAX_TAG = 100
PRIVATE_TAG_PREFIXES = ("composed:", "personal:", "population:")
"""Tags never part of a study's whole pool: a rater's own compositions (``composed:<rater name>``,
:mod:`rlcomposer.feedback.compositions`), the melodies ``rlcomposer study personalise`` makes for
one rater of a study (``personal:<study>:<rater id>``) and the population melodies they are compared
with (``population:<study>``, :mod:`rlcomposer.feedback.personalise`)."""
COMPOSED_PREFIX = PRIVATE_TAG_PREFIXES[0]
PERSONAL_PREFIX, POPULATION_PREFIX = MADE_FOR_YOU_PREFIXES = PRIVATE_TAG_PREFIXES[1:]
"""The tags of "made for you" melodies (``personal:``, ``population:``): answers about them, the
blind A/B after a study, are not answers of the study's set (:meth:`AnswerStore.count_submissions`)."""


def is_private_tag(tag: str) -> bool:
    """Whether ``tag`` is one a study over the whole pool never serves (:data:`PRIVATE_TAG_PREFIXES`)."""
    return tag.startswith(PRIVATE_TAG_PREFIXES)


@dataclass(frozen=True)
class MelodyRecord:
    """A melody of the pool with its provenance."""

    id: int
    melody: Melody
    tag: str
    model: str | None
    seed: int | None
    sample_index: int | None
    experiment: str | None
    created_at: datetime


@dataclass(frozen=True)
class PoolAddResult:
    """What :meth:`FeedbackStore.add_melodies` did: ids in input order."""

    ids: list[int]
    added: int
    existing: int
    model_id: int | None


@dataclass(frozen=True)
class PoolMelody:
    """A melody of the pool with the count and mean of its star ratings."""

    id: int
    tag: str
    model: str | None
    seed: int | None
    num_ratings: int
    mean_stars: float | None
    metre: str = "4/4"
    """Its time signature, as stored (:func:`stored_layout`)."""
    key: str = "C major"
    """Its key (tonic and mode), as stored."""
    pickup_steps: int | str = 0
    """Sixteenth steps before its first downbeat, as stored."""


def check_tag(tag: Any) -> str:
    """A pool tag: 1-100 characters, no leading/trailing spaces, no control characters."""
    if not isinstance(tag, str) or not tag.strip() or tag != tag.strip() or len(tag) > MAX_TAG \
            or any(ord(c) < 32 for c in tag):
        raise FeedbackError(f"tag {tag!r} must be 1-{MAX_TAG} printable characters")
    return tag


def tokens_sha1(tokens: Sequence[int]) -> str:
    """The identity of a melody's tokens within a tag."""
    return hashlib.sha1(json.dumps([int(t) for t in tokens]).encode()).hexdigest()


class PoolStore(StoreBase):
    """The pool's melodies and models."""

    # --------------------------------------------------------------- models
    def register_model(self, name: str, kind: str = "prior", config: dict[str, Any] | None = None,
                       path: str | None = None) -> int:
        """The id of model ``name``, stored (with its config) the first time."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise FeedbackError(f"model name {name!r} must be 1-200 characters")
        config = json.loads(json.dumps(config or {}, default=str))
        with self._session(write=True) as session:
            session.execute(self._insert(Model, name=name, kind=kind, config=config, path=path,
                                         created_at=utcnow())
                            .on_conflict_do_nothing(index_elements=["name"]))
            return session.scalars(sa.select(Model.id).where(Model.name == name)).one()

    def models(self) -> list[dict[str, Any]]:
        with self._session() as session:
            return [{"id": m.id, "name": m.name, "kind": m.kind, "path": m.path, "config": m.config}
                    for m in session.scalars(sa.select(Model).order_by(Model.id))]

    # ---------------------------------------------------------------- pool
    def add_melodies(self, melodies: Sequence[Melody], tag: str, model: str | None = None,
                     model_kind: str = "prior", model_config: dict[str, Any] | None = None,
                     model_path: str | None = None, experiment: str | None = None) -> PoolAddResult:
        """Put melodies in the rating pool under ``tag``. A melody already in the
        tag is not added twice (its existing id is returned)."""
        check_tag(tag)
        if experiment is not None and (not isinstance(experiment, str) or len(experiment) > 200):
            raise FeedbackError(f"experiment {experiment!r} must be at most 200 characters")
        melodies = list(melodies)
        if not all(isinstance(m, Melody) for m in melodies):
            raise FeedbackError("add_melodies takes Melody objects")
        model_id = self.register_model(model, model_kind, model_config, model_path) if model else None
        ids: list[int] = []
        added = 0
        with self._session(write=True) as session:
            for melody in melodies:
                tokens = [int(t) for t in melody.tokens]
                digest = tokens_sha1(tokens)
                meta = dict(melody.metadata)
                for name in LAYOUT_KEYS:  # the melody's own, never a stale copy in its metadata
                    meta.pop(name, None)
                if (melody.metre.name, melody.key.name) != ("4/4", "C major"):  # how to bar and spell it
                    meta.update(metre=melody.metre.name,
                                key={"tonic": melody.key.tonic, "mode": melody.key.mode})
                if melody.pickup_steps:
                    meta["pickup_steps"] = melody.pickup_steps
                seed = meta.pop("seed", None)
                index = meta.pop("index", None)
                result = session.execute(
                    self._insert(StoredMelody, tokens=tokens, tokens_sha1=digest, num_steps=len(tokens),
                                 model_id=model_id, seed=seed if isinstance(seed, int) else None,
                                 sample_index=index if isinstance(index, int) else None, tag=tag,
                                 experiment=experiment,
                                 extra=json.loads(json.dumps(meta, default=str)), created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["tag", "tokens_sha1"])
                    .returning(StoredMelody.id))
                added += result.first() is not None
                ids.append(session.scalars(sa.select(StoredMelody.id).where(
                    StoredMelody.tag == tag, StoredMelody.tokens_sha1 == digest)).one())
        return PoolAddResult(ids=ids, added=added, existing=len(melodies) - added, model_id=model_id)

    def get_melody(self, melody_id: int) -> MelodyRecord:
        check_id(melody_id, "melody id")
        with self._session() as session:
            row = session.execute(
                sa.select(StoredMelody, Model.name).outerjoin(Model, StoredMelody.model_id == Model.id)
                .where(StoredMelody.id == melody_id)).first()
            if row is None:
                raise FeedbackError(f"melody id {melody_id} is unknown")
            return _melody_record(*row)

    def get_melodies(self, melody_ids: Iterable[int]) -> dict[int, MelodyRecord]:
        ids = sorted({check_id(i, "melody id") for i in melody_ids})
        with self._session() as session:
            rows = session.execute(
                sa.select(StoredMelody, Model.name).outerjoin(Model, StoredMelody.model_id == Model.id)
                .where(StoredMelody.id.in_(ids))).all()
        found = {row[0].id: _melody_record(*row) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise FeedbackError(f"melody id {missing[0]} is unknown")
        return found

    def melody_ids(self, tags: Sequence[str] | None = None) -> list[int]:
        """Ids of the pool's melodies (of ``tags`` only, if given), oldest first. Without
        ``tags`` (a study's whole pool), melodies made for one rater are left out
        (:data:`PRIVATE_TAG_PREFIXES`)."""
        query = _of_tags(sa.select(StoredMelody.id).order_by(StoredMelody.id), tags)
        with self._session() as session:
            return list(session.scalars(query))

    def melody_shapes(self, tags: Sequence[str] | None = None) -> dict[int, tuple[str, int]]:
        """``(metre, steps)`` of the pool's melodies (of ``tags`` only), by id: a comparison is
        only ever between two melodies of the same metre and length."""
        query = _of_tags(sa.select(StoredMelody.id, StoredMelody.num_steps, StoredMelody.extra), tags)
        with self._session() as session:
            return {i: (str((extra or {}).get("metre", "4/4")), int(n))
                    for i, n, extra in session.execute(query)}

    def tags(self) -> list[tuple[str, int]]:
        """Each tag with its number of melodies."""
        with self._session() as session:
            return [(t, n) for t, n in session.execute(
                sa.select(StoredMelody.tag, sa.func.count()).group_by(StoredMelody.tag).order_by(StoredMelody.tag))]

    def melody_tags(self) -> dict[int, str]:
        """The tag of every melody of the pool, by melody id."""
        with self._session() as session:
            return _tag_of(session)

    def pool_melodies(self, tag: str | None = None) -> list[PoolMelody]:
        """The pool's melodies (of ``tag`` only, if given), oldest first, each with
        its number of star ratings and their mean."""
        with self._session() as session:
            query = sa.select(StoredMelody.id, StoredMelody.tag, Model.name, StoredMelody.seed,
                              StoredMelody.extra).outerjoin(
                Model, StoredMelody.model_id == Model.id).order_by(StoredMelody.id)
            if tag:
                query = query.where(StoredMelody.tag == tag)
            base = session.execute(query).all()
            star_stats = {mid: (n, mean) for mid, n, mean in session.execute(
                sa.select(StarRating.melody_id, sa.func.count(), sa.func.avg(StarRating.stars))
                .group_by(StarRating.melody_id))}
        rows = []
        for mid, mtag, model_name, seed, extra in base:
            n, mean = star_stats.get(mid, (0, None))
            rows.append(PoolMelody(mid, mtag, model_name, seed, n, None if mean is None else float(mean),
                                   *stored_layout_text(extra)))
        return rows


def _of_tags(query: sa.Select, tags: Sequence[str] | None) -> sa.Select:
    """``query`` of the melodies of ``tags``; of the whole pool but made-for-you melodies without."""
    if tags:
        return query.where(StoredMelody.tag.in_(list(tags)))
    for prefix in PRIVATE_TAG_PREFIXES:
        query = query.where(sa.not_(StoredMelody.tag.startswith(prefix, autoescape=True)))
    return query


def _tag_of(session: Session) -> dict[int, str]:
    return dict(session.execute(sa.select(StoredMelody.id, StoredMelody.tag)).all())


LAYOUT_KEYS = ("metre", "key", "pickup_steps")
"""The keys of a stored melody's metadata that say how to bar and spell it."""


def _shown(value: Any) -> str:
    """A stored value for a one-line message (long ones cut short)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def stored_layout(extra: dict[str, Any] | None) -> tuple[Metre, Key, int]:
    """``(metre, key, pickup_steps)`` from a stored melody's metadata (absent: 4/4, C major, 0).

    Raises :class:`FeedbackError` saying which of them cannot be read, and why (one line).
    """
    extra = extra if isinstance(extra, dict) else {}
    metre = extra.get("metre", "4/4")
    try:
        if not isinstance(metre, str):
            raise RLComposerError("a metre is a time signature such as '6/8'")
        metre = parse_metre(metre)
    except RLComposerError as error:
        raise FeedbackError(f"its stored metre {_shown(extra.get('metre'))} cannot be read ({error})") from None
    key = extra.get("key")
    try:
        if key is None:
            key = DEFAULT_KEY
        elif isinstance(key, dict) and all(isinstance(key.get(k, ""), str) for k in ("tonic", "mode")):
            key = Key(key.get("tonic", "C"), key.get("mode", "major"))
        else:
            raise RLComposerError("a key is {'tonic': 'G', 'mode': 'major'}")
    except RLComposerError as error:
        raise FeedbackError(f"its stored key {_shown(extra.get('key'))} cannot be read ({error})") from None
    pickup = extra.get("pickup_steps", 0)
    try:
        if isinstance(pickup, bool) or not isinstance(pickup, int):
            raise RLComposerError("a pick-up is a whole number of sixteenth steps")
        pickup = check_pickup_steps(pickup, metre)
    except RLComposerError as error:
        raise FeedbackError(f"its stored pick-up {_shown(extra.get('pickup_steps'))} cannot be read ({error})") from None
    return metre, key, pickup


def stored_layout_text(extra: dict[str, Any] | None) -> tuple[str, str, int | str]:
    """``(metre, key, pickup_steps)`` of a stored melody as shown in tables and exports:
    ``("6/8", "G major", 0)``; what cannot be read is shown as stored, never an error."""
    try:
        metre, key, pickup = stored_layout(extra)
        return metre.name, key.name, pickup
    except FeedbackError:
        extra = extra if isinstance(extra, dict) else {}
        key = extra.get("key")
        key_text = (f"{key.get('tonic', 'C')} {key.get('mode', 'major')}" if isinstance(key, dict)
                    else "C major" if key is None else str(key))
        pickup = extra.get("pickup_steps", 0)
        return (str(extra.get("metre", "4/4")), key_text,
                pickup if isinstance(pickup, int) and not isinstance(pickup, bool) else str(pickup))


def _melody_record(row: StoredMelody, model_name: str | None) -> MelodyRecord:
    metadata = dict(row.extra or {}) if isinstance(row.extra, dict) else {}
    try:
        metre, key, pickup = stored_layout(metadata)
        for name in LAYOUT_KEYS:
            metadata.pop(name, None)
        metadata.update(tag=row.tag, melody_id=row.id)
        if model_name:
            metadata["model"] = model_name
        if row.seed is not None:
            metadata["seed"] = row.seed
        melody = Melody(row.tokens, metadata, metre, key, pickup)
    except FeedbackError as error:
        raise FeedbackError(f"melody id {row.id} (tag {row.tag}): {error}") from None
    except RLComposerError as error:  # MelodyError: tokens that do not fit, a pick-up longer than the melody
        raise FeedbackError(f"melody id {row.id} (tag {row.tag}) cannot be read ({error})") from None
    return MelodyRecord(row.id, melody, row.tag, model_name, row.seed,
                        row.sample_index, row.experiment, row.created_at)

