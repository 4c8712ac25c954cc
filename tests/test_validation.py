"""The validation layer: numbers finite, in range, and the range in the message."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import pytest

from rlcomposer.config import ConfigError, load_config
from rlcomposer.errors import RLComposerError
from rlcomposer.validation import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    Range,
    ValidationError,
    above,
    between,
    check_config,
    option_type,
)


@pytest.mark.parametrize("allowed, value, message", [
    (POSITIVE, math.nan, "rate must be above 0, got nan"),
    (POSITIVE, 0.0, "rate must be above 0, got 0.0"),
    (NON_NEGATIVE, -math.inf, "rate must be 0 or more, got -inf"),
    (AT_LEAST_ONE, 0, "rate must be at least 1, got 0"),
    (AT_LEAST_ONE, 2.5, "rate must be a whole number at least 1, got 2.5"),
    (FRACTION, 1.0, "rate must be in [0, 1), got 1.0"),
    (between(1, 32, whole=True), 33, "rate must be from 1 to 32, got 33"),
    (above(0, 1, optional=True), math.inf, "rate must be in (0, 1] (or null), got inf"),
    (Range(), math.nan, "rate must be a finite number, got nan"),
    (POSITIVE, True, "rate must be above 0, got True"),
    (POSITIVE, "1", "rate must be above 0, got '1'"),
])
def test_a_number_outside_its_range_names_the_input_the_range_and_the_value(allowed, value, message):
    with pytest.raises(ValidationError) as raised:
        allowed.check(value, "rate")
    assert str(raised.value) == message
    assert isinstance(raised.value, RLComposerError)


@pytest.mark.parametrize("allowed, value", [
    (POSITIVE, 1e-300), (NON_NEGATIVE, 0), (FRACTION, 0.0), (between(1, 32, whole=True), 32),
    (between(1, 32, whole=True), 1.0), (above(0, 1, optional=True), None), (Range(), -1e308)])
def test_a_number_inside_its_range_is_returned(allowed, value):
    assert allowed.check(value, "rate") == value


def test_check_config_checks_every_float_field_and_the_ranges_given():
    @dataclass(frozen=True)
    class Example:
        rate: float = 0.1
        weight: float = 1.0
        count: int = 3

        def __post_init__(self):
            check_config(self, {"rate": POSITIVE, "count": AT_LEAST_ONE}, "example ")

    Example()
    with pytest.raises(ValidationError, match="example weight must be a finite number, got inf"):
        Example(weight=math.inf)
    with pytest.raises(ValidationError, match="example count must be at least 1, got 0"):
        Example(count=0)
    with pytest.raises(ValueError, match="no fields"):  # a range for a field that is not there is a bug
        check_config(Example(), {"missing": POSITIVE})


def test_configs_built_from_yaml_report_the_key_and_the_range(tmp_path):
    from rlcomposer.rl.tuning import TuneConfig

    path = tmp_path / "tune.yaml"
    path.write_text("learning_rate: .nan\n")
    with pytest.raises(ConfigError, match=r"tune.yaml: learning_rate must be in \(0, 1\], got nan"):
        load_config(TuneConfig, path)
    with pytest.raises(ConfigError, match="env': num_bars must be from 1 to 32, got 33"):
        load_config(TuneConfig, None, {"num_bars": 33})


def test_option_type_parses_and_checks_for_argparse():
    parse = option_type(between(1, 32, whole=True))
    assert parse("7") == 7
    for text, message in (("x", "expected a whole number, got 'x'"), ("0", "must be from 1 to 32, got 0"),
                          ("2.5", "expected a whole number, got '2.5'")):
        with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(")):
            parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match="must be above 0, got nan"):
        option_type(POSITIVE)("nan")
