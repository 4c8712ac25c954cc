"""Metres: time signatures on the sixteenth-note grid, and how their bars divide.

A :class:`Metre` is a time signature such as ``6/8``: a bar of ``numerator``
notes of value ``1/denominator``. On the grid of :mod:`rlcomposer.music.melody`
(four steps per quarter note) a bar lasts :attr:`Metre.steps_per_bar` steps: 16
for 4/4 and 2/2, 8 for 2/4, 12 for 3/4 and 6/8, 18 for 9/8, 24 for 12/8 and 3/2,
32 for 4/2.

:data:`METRES` lists the metres rlcomposer knows (the ones music21's folk
collections use widely); each belongs to a :attr:`~Metre.family`:

* ``duple``: 2/4, 4/4, 2/2, 4/2 (two or four simple beats);
* ``triple``: 3/4, 3/8, 3/2 (three simple beats: waltzes, mazurkas, airs);
* ``compound``: 6/8, 9/8, 12/8, 6/4 (beats of three: jigs, slides, slip jigs).

The beat (:attr:`~Metre.beat_steps`) is the denominator's note in simple metres
and the dotted note of three in compound ones (a 6/8 bar is two beats of six
steps); beaming groups notes by beat.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcomposer.errors import RLComposerError

STEPS_PER_WHOLE_NOTE = 16
"""Grid steps in a whole note (the grid is sixteenth notes)."""

FAMILIES = ("duple", "triple", "compound")
"""Metre families, in the order reports list them."""


class MetreError(RLComposerError):
    """A time signature rlcomposer does not know, or a melody that does not fit its metre."""


@dataclass(frozen=True)
class Metre:
    """A time signature. Build one with :func:`parse_metre` (``Metre(6, 8)`` works too)."""

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if self.denominator not in (1, 2, 4, 8, 16) or not 1 <= self.numerator <= 32:
            raise MetreError(f"{self.numerator}/{self.denominator} is not a time signature")
        if (self.numerator * STEPS_PER_WHOLE_NOTE) % self.denominator:
            raise MetreError(f"a bar of {self.name} is off the sixteenth-note grid")

    @property
    def name(self) -> str:
        """The time signature as written: ``"6/8"``."""
        return f"{self.numerator}/{self.denominator}"

    def __str__(self) -> str:
        return self.name

    @property
    def steps_per_bar(self) -> int:
        """Sixteenth-note steps in one bar."""
        return self.numerator * STEPS_PER_WHOLE_NOTE // self.denominator

    @property
    def is_compound(self) -> bool:
        """Beats of three notes (6/8, 9/8, 12/8, 6/4)."""
        return self.numerator % 3 == 0 and self.numerator > 3

    @property
    def beats_per_bar(self) -> int:
        return self.numerator // 3 if self.is_compound else self.numerator

    @property
    def beat_steps(self) -> int:
        """Steps in one beat (6 for the dotted quarter of 6/8, 4 for the quarter of 3/4)."""
        return self.steps_per_bar // self.beats_per_bar

    @property
    def family(self) -> str:
        """``duple``, ``triple`` or ``compound`` (see the module docstring)."""
        if self.is_compound:
            return "compound"
        return "triple" if self.numerator % 3 == 0 else "duple"

    @property
    def index(self) -> int:
        """Position in :data:`METRES` (the prior's metre input)."""
        return METRES.index(self)


METRES: tuple[Metre, ...] = tuple(
    Metre(n, d) for n, d in ((4, 4), (2, 4), (2, 2), (4, 2), (3, 4), (3, 8), (3, 2),
                             (6, 8), (9, 8), (12, 8), (6, 4))
)
"""Every metre rlcomposer knows; 4/4 first (the default)."""

DEFAULT_METRE = METRES[0]
MAX_BARS = 32
"""The longest melody rlcomposer generates or tunes, in bars (``--bars`` is 1..32)."""
METRE_NAMES = tuple(m.name for m in METRES)
MAX_STEPS_PER_BAR = max(m.steps_per_bar for m in METRES)  # 32 (4/2)

_ALIASES = {"C": "4/4", "C|": "2/2"}


def parse_metre(value: str | Metre | None) -> Metre:
    """A :class:`Metre` from ``"6/8"`` (or ``C`` for 4/4, ``C|`` for 2/2); None is 4/4.

    Raises :class:`MetreError` naming the known metres for anything else.
    """
    if value is None:
        return DEFAULT_METRE
    if isinstance(value, Metre):
        metre = value
    else:
        text = "".join(str(value).split())
        text = _ALIASES.get(text, text)
        numerator, slash, denominator = text.partition("/")
        if not (slash and numerator.isdigit() and denominator.isdigit()):
            raise MetreError(f"unknown metre {value!r}: choose one of {', '.join(METRE_NAMES)}")
        try:
            metre = Metre(int(numerator), int(denominator))
        except MetreError:
            metre = None
    if metre not in METRES:
        raise MetreError(f"unknown metre {value!r}: choose one of {', '.join(METRE_NAMES)}")
    return metre


def check_pickup_steps(pickup_steps, metre: Metre, num_steps: int | None = None) -> int:
    """``pickup_steps`` checked as a pick-up of ``metre``: a whole number of steps, at least 0
    and shorter than a bar (and than the melody, if ``num_steps`` is given).

    Raises :class:`MetreError` saying why.
    """
    if isinstance(pickup_steps, bool) or int(pickup_steps) != pickup_steps:
        raise MetreError(f"a pick-up of {pickup_steps!r} steps is not a whole number of sixteenths")
    pickup_steps = int(pickup_steps)
    if not 0 <= pickup_steps < metre.steps_per_bar:
        raise MetreError(f"a pick-up of {pickup_steps} steps does not fit {metre.name}: it must be at "
                         f"least 0 and shorter than the bar's {metre.steps_per_bar} steps")
    if num_steps is not None and pickup_steps > num_steps:
        raise MetreError(f"a pick-up of {pickup_steps} steps is longer than the melody's {num_steps}")
    return pickup_steps


def pickup_from_beats(beats: float, metre: Metre) -> int:
    """A pick-up given in quarter notes (``--pickup 1.5``) as steps of ``metre``.

    Raises :class:`MetreError` for a negative, non-finite or off-grid length and for one
    as long as a bar or longer.
    """
    import math

    try:
        value = float(beats)
    except (TypeError, ValueError):
        raise MetreError(f"a pick-up of {beats!r} beats is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise MetreError(f"a pick-up of {beats!r} beats must be a finite number of beats, at least 0")
    steps = value * STEPS_PER_WHOLE_NOTE / 4
    if steps >= metre.steps_per_bar:
        raise MetreError(f"a pick-up of {value:g} beats is as long as a bar of {metre.name} or longer "
                         f"(a bar is {metre.steps_per_bar / 4:g} beats): ask for one more bar instead")
    if abs(steps - round(steps)) > 1e-9:
        raise MetreError(f"a pick-up of {value:g} beats is off the sixteenth-note grid")
    return int(round(steps))
