"""Checked numbers: finite, in range, with the range in the message.

The one validation layer for numbers. Every config dataclass calls
:func:`check_config` from its ``__post_init__`` (each int and float field must
be finite, and those given a :class:`Range` must lie in it), and every numeric
CLI option parses through :func:`option_type`. A value outside its range raises
:class:`ValidationError` (the project's error: one line, exit 2 in the CLI)
naming the input, the range and the value::

    learning_rate must be a number above 0, got nan
    --bars must be a whole number from 1 to 32, got 33
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rlcomposer.errors import RLComposerError


class ValidationError(RLComposerError):
    """A number that is not finite, not whole where it must be, or outside its range."""


def _show(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


@dataclass(frozen=True)
class Range:
    """Where a number may lie: bounds (inclusive unless ``*_open``), whole or not, ``None`` allowed or not."""

    low: float | None = None
    """Smallest allowed value (None: no lower bound)."""
    high: float | None = None
    """Largest allowed value (None: no upper bound)."""
    low_open: bool = False
    """The value must be strictly above ``low``."""
    high_open: bool = False
    """The value must be strictly below ``high``."""
    whole: bool = False
    """The value must be a whole number."""
    optional: bool = False
    """``None`` is allowed too."""

    def describe(self) -> str:
        """The range in words: ``from 1 to 32``, ``in [0, 1)``, ``above 0``, ``at least 1``, ``0 or more``."""
        low, high = self.low, self.high
        if low is not None and high is not None:
            if not self.low_open and not self.high_open:
                text = f"from {_show(low)} to {_show(high)}"
            else:
                text = (f"in {'(' if self.low_open else '['}{_show(low)}, "
                        f"{_show(high)}{')' if self.high_open else ']'}")
        elif low is not None:
            text = f"above {_show(low)}" if self.low_open else "0 or more" if low == 0 else f"at least {_show(low)}"
        elif high is not None:
            text = f"below {_show(high)}" if self.high_open else f"at most {_show(high)}"
        else:
            text = "a finite number"
        return text + (" (or null)" if self.optional else "")

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def check(self, value: Any, name: str) -> Any:
        """``value`` if it is in the range, else :class:`ValidationError` naming ``name``."""
        if value is None and self.optional:
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValidationError(f"{name} must be {self.describe()}, got {value!r}")
        if not math.isfinite(value):
            raise ValidationError(f"{name} must be {self.describe()}, got {value}")
        if self.whole and value != int(value):
            raise ValidationError(f"{name} must be a whole number {self.describe()}, got {value}")
        if not self.contains(value):
            raise ValidationError(f"{name} must be {self.describe()}, got {value}")
        return value


# the ranges most fields need
ANY = Range()
"""Any finite number."""
POSITIVE = Range(0, low_open=True)
"""Above 0."""
NON_NEGATIVE = Range(0)
"""0 or more."""
AT_LEAST_ONE = Range(1, whole=True)
"""A count: 1 or more."""
COUNT = Range(0, whole=True)
"""A count that may be 0."""
PROBABILITY = Range(0, 1)
"""0 to 1, both included."""
FRACTION = Range(0, 1, high_open=True)
"""0 up to, not including, 1."""
MAX_COUNT = 10**9
"""Counts (steps, melodies, epochs) above this are mistakes, not requests."""
SEED = Range(0, 2**32 - 1, whole=True)
"""A random seed: numpy's and SB3's seeding take 0 .. 2**32 - 1."""
THREADS = Range(1, 256, whole=True)
"""torch CPU threads."""


def between(low: float, high: float, *, whole: bool = False, optional: bool = False) -> Range:
    """``low`` to ``high``, both included."""
    return Range(low, high, whole=whole, optional=optional)


def above(low: float, high: float | None = None, *, optional: bool = False) -> Range:
    """Strictly above ``low`` (and at most ``high``)."""
    return Range(low, high, low_open=True, optional=optional)


def check_number(value: Any, name: str, allowed: Range = ANY) -> Any:
    """``value`` if it is finite and in ``allowed``, else :class:`ValidationError`."""
    return allowed.check(value, name)


def check_config(config: Any, ranges: Mapping[str, Range] | None = None, where: str = "") -> None:
    """Check a config dataclass: every int / float field finite, those in ``ranges`` in their range.

    Nested config dataclasses check themselves in their own ``__post_init__``.
    ``where`` prefixes the field names in messages (e.g. ``"dpo "``).
    """
    ranges = dict(ranges or {})
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name in ranges:
            ranges.pop(item.name).check(value, f"{where}{item.name}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"{where}{item.name} must be a finite number, got {value}")
    if ranges:
        raise ValueError(f"check_config: no fields {sorted(ranges)} in {type(config).__name__}")


def option_type(allowed: Range, whole: bool | None = None) -> Callable[[str], Any]:
    """An argparse ``type=``: parses the text (a whole number when the range is whole) and checks it.

    argparse turns the error into ``argument --NAME: must be ..., got ...`` and exit status 2.
    """
    whole = allowed.whole if whole is None else whole

    def parse(text: str) -> Any:
        try:
            value: Any = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a {'whole ' if whole else ''}number, got {text!r}") from None
        try:
            allowed.check(value, "value")
        except ValidationError:
            raise argparse.ArgumentTypeError(f"must be {allowed.describe()}, got {text}") from None
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse
