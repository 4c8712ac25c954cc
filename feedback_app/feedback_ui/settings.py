"""The app's settings, read from the environment once per run."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from rlcomposer.errors import RLComposerError
from rlcomposer.feedback.database import ENV_DATABASE_URL, resolve_database_url

ENV_ACCESS_CODE = "RLCOMPOSER_ACCESS_CODE"
ENV_ADMIN_PASSWORD = "RLCOMPOSER_ADMIN_PASSWORD"
ENV_REPEAT_SHARE = "RLCOMPOSER_REPEAT_SHARE"
ENV_POOL_TAGS = "RLCOMPOSER_POOL_TAGS"
ENV_TEMPO = "RLCOMPOSER_TEMPO_BPM"
ENV_MIX_TAGS = "RLCOMPOSER_MIX_TAGS"
ENV_ACTIVE_REWARD = "RLCOMPOSER_ACTIVE_REWARD"
ENV_STUDY_MODE = "RLCOMPOSER_STUDY_MODE"
ENV_ITEMS_PER_RATER = "RLCOMPOSER_ITEMS_PER_RATER"
ENV_LISTEN_FRACTION = "RLCOMPOSER_LISTEN_FRACTION"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class AppSettings:
    """How the rating app runs (all from the environment)."""

    database_url: str
    """``$RLCOMPOSER_DATABASE_URL`` (``rlcomposer app --db`` sets it), else the default SQLite file."""
    access_code: str | None = None
    """``$RLCOMPOSER_ACCESS_CODE``: a shared code raters type at sign-in (public deployments); unset: none."""
    admin_password: str | None = None
    """``$RLCOMPOSER_ADMIN_PASSWORD``: opens the dashboard; unset: the dashboard stays closed."""
    repeat_share: float = 0.05
    """``$RLCOMPOSER_REPEAT_SHARE``: share of deliberate repeats that measure self-consistency (0-0.5)."""
    tags: tuple[str, ...] = ()
    """``$RLCOMPOSER_POOL_TAGS``: comma-separated tags to rate (empty: the whole pool)."""
    tempo_bpm: float = 120.0
    """``$RLCOMPOSER_TEMPO_BPM``: playback tempo in quarter notes per minute."""
    mix_tags: bool = False
    """``$RLCOMPOSER_MIX_TAGS=1``: each pair has one melody of each of the two tags in
    ``$RLCOMPOSER_POOL_TAGS`` (e.g. a tuned policy's pool against the prior's)."""
    active_reward: str | None = None
    """``$RLCOMPOSER_ACTIVE_REWARD=DIR``: choose pairs where this reward model's ensemble
    disagrees most (active selection); unset: at random."""
    study_mode: str = "pairs"
    """``$RLCOMPOSER_STUDY_MODE``: ``pairs`` (default) or ``stars``, for the default study."""
    items_per_rater: int = 20
    """``$RLCOMPOSER_ITEMS_PER_RATER``: the default study's target of answers per rater."""
    listen_fraction: float = 1.0
    """``$RLCOMPOSER_LISTEN_FRACTION``: share of each melody that must play before answering
    (default study; 0 disables)."""

    def default_study_spec(self):
        """The study served when the URL names none: the settings above, as a study."""
        from rlcomposer.feedback.study import DEFAULT_STUDY, StudySpec

        mode = "mixed-tags" if self.mix_tags else self.study_mode
        return StudySpec(name=DEFAULT_STUDY, pool_tags=self.tags, mode=mode,
                         items_per_rater=self.items_per_rater,
                         selection="active" if self.active_reward else "random",
                         reward_model=self.active_reward, listen_fraction=self.listen_fraction,
                         repeat_share=self.repeat_share)

    def access_code_ok(self, given: str) -> bool:
        return self.access_code is None or hmac.compare_digest(given.encode(), self.access_code.encode())

    def admin_password_ok(self, given: str) -> bool:
        return self.admin_password is not None and hmac.compare_digest(given.encode(), self.admin_password.encode())


def load_settings(environ=None) -> AppSettings:
    """Settings from ``environ`` (default ``os.environ``); bad values raise RLComposerError naming the variable."""
    environ = os.environ if environ is None else environ
    url = resolve_database_url(None, environ.get(ENV_DATABASE_URL))

    def number(name: str, default: float, low: float, high: float) -> float:
        raw = environ.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = float(raw)
        except ValueError:
            raise RLComposerError(f"${name}={raw!r} is not a number") from None
        if not low <= value <= high:
            raise RLComposerError(f"${name}={raw!r} must be between {low:g} and {high:g}")
        return value

    tags = tuple(t.strip() for t in environ.get(ENV_POOL_TAGS, "").split(",") if t.strip())
    raw_mix = environ.get(ENV_MIX_TAGS, "").strip().lower()
    if raw_mix not in _TRUE + _FALSE:
        raise RLComposerError(f"${ENV_MIX_TAGS}={environ[ENV_MIX_TAGS]!r} must be 1 or 0")
    mix_tags = raw_mix in _TRUE
    if mix_tags and (len(tags) != 2 or tags[0] == tags[1]):
        raise RLComposerError(f"${ENV_MIX_TAGS}=1 needs exactly two different tags in ${ENV_POOL_TAGS} "
                              f"(got {', '.join(tags) or 'none'})")
    active_reward = environ.get(ENV_ACTIVE_REWARD, "").strip() or None
    if mix_tags and active_reward:
        raise RLComposerError(f"${ENV_MIX_TAGS} and ${ENV_ACTIVE_REWARD} cannot be used together: choose one")
    mode = environ.get(ENV_STUDY_MODE, "").strip().lower() or "pairs"
    if mode not in ("pairs", "stars"):
        raise RLComposerError(f"${ENV_STUDY_MODE}={environ[ENV_STUDY_MODE]!r} must be pairs or stars")
    return AppSettings(
        database_url=url,
        access_code=environ.get(ENV_ACCESS_CODE) or None,
        admin_password=environ.get(ENV_ADMIN_PASSWORD) or None,
        repeat_share=number(ENV_REPEAT_SHARE, 0.05, 0.0, 0.5),
        tags=tags,
        tempo_bpm=number(ENV_TEMPO, 120.0, 20.0, 400.0),
        mix_tags=mix_tags,
        active_reward=active_reward,
        study_mode=mode,
        items_per_rater=int(number(ENV_ITEMS_PER_RATER, 20, 1, 10_000)),
        listen_fraction=number(ENV_LISTEN_FRACTION, 1.0, 0.0, 1.0),
    )
