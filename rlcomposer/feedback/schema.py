"""The rating database's tables, as SQLAlchemy 2 declarative models.

The Alembic migrations in the top-level ``alembic/`` folder build exactly these
tables (a test runs autogenerate and expects no difference). Constraints live in
the database, so a bad value is refused whoever writes it:

* ``star_ratings.stars`` is between 1 and 5;
* ``comparisons.choice`` is one of ``a``, ``b``, ``tie``, ``skip``, and
  ``comparisons.shown_left`` (which melody of the pair was shown on the left,
  labelled "A" on screen) is ``a`` or ``b``; the two melodies differ;
* every submission carries a ``client_id`` made by the client (a UUID), unique
  per table, so a retry or a double click stores one row;
* timings (``listened_ms``, ``answer_ms``) are not negative;
* foreign keys tie ratings to raters, sessions, melodies and studies;
* a rater's ``name_key`` (trimmed, case-folded) is unique, and only the SHA-256 of
  their secret sign-in token is stored;
* a study's mode, selection and status are one of their known values;
* a rater's current item in a study (``current_items``: what is on their screen and how
  long each of its melodies has played) and the melodies they have heard in full
  (``heard_melodies``) are kept, so a reload keeps the item and its listening.

Times are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rlcomposer.preferences.choices import CHOICES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RATER_KINDS = ("person", "simulated")
STUDY_MODES = ("stars", "pairs", "mixed-tags")
STUDY_SELECTIONS = ("random", "active")
STUDY_STATUSES = ("open", "closed")
TOKEN_SHA256_LENGTH = 64
SIDES = ("a", "b")
MIN_STARS = 1
MAX_STARS = 5
CLIENT_ID_MAX = 64


def utcnow() -> datetime:
    """Now, in UTC (timezone-aware)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Rater(Base):
    """A listener: a person signed in by name, or a simulated listener (``sim:<function>``)."""

    __tablename__ = "raters"
    __table_args__ = (
        CheckConstraint(f"kind IN {RATER_KINDS!r}", name="kind"),
        CheckConstraint("length(name) >= 1", name="name_not_empty"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    name_key: Mapped[str] = mapped_column(String(80), unique=True)
    """The name trimmed, with runs of spaces made one, case-folded: "Keyboard Kim" and
    "keyboard kim " are one rater."""
    kind: Mapped[str] = mapped_column(String(16), default="person")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    consented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    token_sha256: Mapped[str | None] = mapped_column(String(TOKEN_SHA256_LENGTH), nullable=True, unique=True)
    """SHA-256 of the rater's secret sign-in token (the token itself is never stored)."""


class Study(Base):
    """A listening study: what raters rate (pool tags, mode), how many items each, what they read
    (instructions, consent), how items are chosen, and how much of each melody must be played."""

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(f"mode IN {STUDY_MODES!r}", name="mode"),
        CheckConstraint(f"selection IN {STUDY_SELECTIONS!r}", name="selection"),
        CheckConstraint(f"status IN {STUDY_STATUSES!r}", name="status"),
        CheckConstraint("items_per_rater >= 1", name="items_positive"),
        CheckConstraint("listen_fraction >= 0 AND listen_fraction <= 1", name="listen_fraction_range"),
        CheckConstraint("repeat_share >= 0 AND repeat_share <= 0.5", name="repeat_share_range"),
        CheckConstraint("length(name) >= 1", name="name_not_empty"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    pool_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(16), default="pairs")
    items_per_rater: Mapped[int] = mapped_column(Integer, default=20)
    instructions: Mapped[str] = mapped_column(Text, default="")
    consent_text: Mapped[str] = mapped_column(Text, default="")
    selection: Mapped[str] = mapped_column(String(16), default="random")
    reward_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    completion_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    listen_fraction: Mapped[float] = mapped_column(Float, default=1.0)
    repeat_share: Mapped[float] = mapped_column(Float, default=0.05)
    status: Mapped[str] = mapped_column(String(8), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Model(Base):
    """A model or checkpoint that composed melodies, with the config that made it."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="prior")
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StoredMelody(Base):
    """A melody in the rating pool, with its provenance (model, seed, tag, experiment)."""

    __tablename__ = "melodies"
    __table_args__ = (
        UniqueConstraint("tag", "tokens_sha1"),
        CheckConstraint("num_steps >= 1", name="num_steps_positive"),
        CheckConstraint("length(tag) >= 1", name="tag_not_empty"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tokens: Mapped[list[int]] = mapped_column(JSON)
    tokens_sha1: Mapped[str] = mapped_column(String(40))
    num_steps: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True, index=True)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sample_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tag: Mapped[str] = mapped_column(String(100), index=True)
    experiment: Mapped[str | None] = mapped_column(String(200), nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RatingSession(Base):
    """One sitting of one rater in the app (or one run of a simulated listener)."""

    __tablename__ = "rating_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    client: Mapped[str | None] = mapped_column(String(200), nullable=True)


class StarRating(Base):
    """1–5 stars for one melody."""

    __tablename__ = "star_ratings"
    __table_args__ = (
        CheckConstraint(f"stars BETWEEN {MIN_STARS} AND {MAX_STARS}", name="stars_range"),
        CheckConstraint("length(client_id) >= 8", name="client_id_length"),
        CheckConstraint("listened_ms IS NULL OR listened_ms >= 0", name="listened_ms_positive"),
        CheckConstraint("answer_ms IS NULL OR answer_ms >= 0", name="answer_ms_positive"),
        Index("ix_star_ratings_rater_melody", "rater_id", "melody_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), unique=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("rating_sessions.id"), nullable=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True, index=True)
    melody_id: Mapped[int] = mapped_column(ForeignKey("melodies.id"), index=True)
    stars: Mapped[int] = mapped_column(SmallInteger)
    is_repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    listened_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    answer_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Comparison(Base):
    """A choice between two melodies: ``a``, ``b``, ``tie`` or ``skip``.

    ``melody_a_id`` / ``melody_b_id`` are the pair in the order the selection
    proposed it; ``shown_left`` says which of the two was on the left of the
    screen (labelled "A" there). ``choice`` always refers to ``melody_a`` /
    ``melody_b``, never to the screen sides.
    """

    __tablename__ = "comparisons"
    __table_args__ = (
        CheckConstraint(f"choice IN {CHOICES!r}", name="choice"),
        CheckConstraint(f"shown_left IN {SIDES!r}", name="shown_left"),
        CheckConstraint("melody_a_id <> melody_b_id", name="two_melodies"),
        CheckConstraint("length(client_id) >= 8", name="client_id_length"),
        CheckConstraint("listened_ms IS NULL OR listened_ms >= 0", name="listened_ms_positive"),
        CheckConstraint("answer_ms IS NULL OR answer_ms >= 0", name="answer_ms_positive"),
        Index("ix_comparisons_rater", "rater_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), unique=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("rating_sessions.id"), nullable=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True, index=True)
    melody_a_id: Mapped[int] = mapped_column(ForeignKey("melodies.id"), index=True)
    melody_b_id: Mapped[int] = mapped_column(ForeignKey("melodies.id"), index=True)
    shown_left: Mapped[str] = mapped_column(String(1))
    choice: Mapped[str] = mapped_column(String(4))
    is_repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    listened_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    answer_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CurrentItem(Base):
    """The item on a rater's screen in a study, with how long each of its melodies has played
    (by screen label): a reload shows the same item with its listening kept."""

    __tablename__ = "current_items"
    __table_args__ = (
        CheckConstraint("kind IN ('single', 'pair')", name="kind"),
        CheckConstraint("length(client_id) >= 8", name="client_id_length"),
    )

    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX))
    kind: Mapped[str] = mapped_column(String(8))
    melody_ids: Mapped[list[int]] = mapped_column(JSON)
    shown_left: Mapped[str | None] = mapped_column(String(1), nullable=True)
    is_repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    played_ms: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    """Milliseconds each melody has played on its own, by screen label (``A``, ``B``, ``melody``)."""
    shown_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HeardMelody(Base):
    """A melody a rater has heard in full: it needs no listening again when it comes back."""

    __tablename__ = "heard_melodies"

    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), primary_key=True)
    melody_id: Mapped[int] = mapped_column(ForeignKey("melodies.id"), primary_key=True)
    heard_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
