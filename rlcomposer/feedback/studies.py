"""Listening studies as stored rows: create, find, list, change settings, open and close.

This is the one place a study is read and written: :mod:`rlcomposer.feedback.study` checks
a study's settings (:class:`~rlcomposer.feedback.study.StudySpec`), calls these and turns
the rows into :class:`~rlcomposer.feedback.study.Study` objects. A name already taken, a
study that does not exist and a status other than open or closed are refused here, with
:class:`StudyError`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rlcomposer.feedback.schema import Study, utcnow
from rlcomposer.feedback.storage import FeedbackError, StoreBase


class StudyError(FeedbackError):
    """A study setting, name or state that cannot be used; nothing was stored."""


class StudyStore(StoreBase):
    """The studies of the store."""

    def create_study(self, name: str, **settings: Any) -> int:
        """Store a new study (see :class:`rlcomposer.feedback.study.StudySpec` for the settings,
        checked there); its id. A name already used is refused."""
        if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 100:
            raise StudyError(f"study name {name!r} must be 1-100 characters without surrounding spaces")
        with self._session(write=True) as session:
            result = session.execute(self._insert(Study, name=name, created_at=utcnow(), status="open",
                                                  **settings).on_conflict_do_nothing().returning(Study.id))
            row = result.first()
            if row is None:
                raise StudyError(f"a study called {name!r} exists already")
            return row[0]

    def get_study(self, name: str) -> dict[str, Any] | None:
        """The study called ``name`` as a dict of its columns, or None."""
        with self._session() as session:
            study = session.scalars(sa.select(Study).where(Study.name == str(name))).first()
            return None if study is None else _study_dict(study)

    def studies(self) -> list[dict[str, Any]]:
        """Every study, oldest first."""
        with self._session() as session:
            return [_study_dict(s) for s in session.scalars(sa.select(Study).order_by(Study.id))]

    def update_study(self, name: str, **settings: Any) -> dict[str, Any]:
        """Change a study's settings (the default study follows the app's settings)."""
        with self._session(write=True) as session:
            study = session.scalars(sa.select(Study).where(Study.name == str(name))).first()
            if study is None:
                raise StudyError(f"there is no study called {name!r}")
            for key, value in settings.items():
                setattr(study, key, value)
            return _study_dict(study)

    def set_study_status(self, name: str, status: str) -> dict[str, Any]:
        """Open or close a study (a closed study takes no answers)."""
        if status not in ("open", "closed"):
            raise StudyError(f"study status {status!r} must be open or closed")
        with self._session(write=True) as session:
            study = session.scalars(sa.select(Study).where(Study.name == str(name))).first()
            if study is None:
                raise StudyError(f"there is no study called {name!r}")
            study.status = status
            study.closed_at = utcnow() if status == "closed" else None
            return _study_dict(study)


def _study_dict(study: Study) -> dict[str, Any]:
    return {column.name: getattr(study, column.name) for column in Study.__table__.columns}

