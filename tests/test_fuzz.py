"""Property-based fuzzing, in-process: any input ends in the project's error or a valid result, in bounds.

Targets: the ``Melody`` loaders (MIDI, JSON and MusicXML bytes: random, and mutated
from real files this project writes), every numeric option of every command (parsed
and validated by ``main``), every numeric key of every config dataclass, and config
files with random keys and values. Each example must finish within a time bound,
and the loaders within a memory bound. The default suite tries a few hundred
examples per target (deterministically); ``-m slow`` tries ten times more, at random.
``pytest tests/test_fuzz.py --hypothesis-show-statistics`` prints the counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import resource
import time
import tracemalloc
import zipfile

import mido
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlcomposer.cli import main
from rlcomposer.cli.main import build_parser
from rlcomposer.config import config_from_dict, load_config
from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import Melody, MelodyError, random_melody

SECONDS_PER_EXAMPLE = 30.0  # generous: on a loaded 2-core machine one music21 parse took 17 s; a hang takes far longer
LOADER_PEAK_BYTES = 64 * 2**20

BUDGETS = [pytest.param(200, id="default"), pytest.param(2000, marks=pytest.mark.slow, id="slow")]
MUSICXML_BUDGETS = [pytest.param(100, id="default"), pytest.param(1000, marks=pytest.mark.slow, id="slow")]


def fuzz(strategy, check, examples: int, target: str) -> None:
    """Run ``check`` on ``examples`` values of ``strategy`` (deterministic in the default suite).

    ``check`` returns what the input ended in (``"valid"`` or ``"refused"``); the counts are
    printed (``pytest -s``) and most of the budget must have been tried.
    """
    outcomes: dict[str, int] = {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=examples <= 200,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(strategy)
    def run(value):
        started = time.monotonic()
        outcome = check(value)
        assert time.monotonic() - started < SECONDS_PER_EXAMPLE
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    run()
    tried = sum(outcomes.values())
    print(f"\nfuzz {target}: {tried} examples ({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})")
    assert tried >= examples // 2


def loads_or_refuses(load, data) -> str:
    """``load(data)`` gives a Melody or raises MelodyError, within the memory bound."""
    tracemalloc.start()
    try:
        try:
            melody = load(data)
            outcome = "valid"
        except MelodyError as error:
            assert str(error) and "\n" not in str(error)
            outcome = "refused"
        else:
            assert isinstance(melody, Melody) and 0 < melody.num_steps <= 4096
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < LOADER_PEAK_BYTES
    return outcome


REAL = [random_melody(np.random.default_rng(seed), 16 * bars) for seed, bars in ((0, 1), (1, 4), (2, 8))]


def mutated(original: bytes) -> st.SearchStrategy[bytes]:
    """``original`` with bytes flipped, cut, repeated or replaced, and random slices spliced in."""

    def apply(data: bytes, edits) -> bytes:
        buffer = bytearray(data)
        for kind, position, payload in edits:
            position %= max(len(buffer), 1)
            if kind == "set" and buffer:
                buffer[position] = payload[0] if payload else 0
            elif kind == "insert":
                buffer[position:position] = payload
            elif kind == "delete":
                del buffer[position:position + len(payload) + 1]
            elif kind == "truncate":
                del buffer[position:]
            elif kind == "repeat":
                buffer[position:position] = bytes(buffer[position:position + 16]) * (len(payload) + 1)
        return bytes(buffer)

    edit = st.tuples(st.sampled_from(["set", "insert", "delete", "truncate", "repeat"]),
                     st.integers(0, 2**20), st.binary(max_size=8))
    return st.lists(edit, min_size=1, max_size=6).map(lambda edits: apply(original, edits))


# ---------------------------------------------------------------------- MIDI
@st.composite
def structured_midi(draw) -> bytes:
    """A MIDI file written by mido with random division, messages and delta-times (deep paths)."""
    file_type = draw(st.sampled_from([0, 1]))
    midi = mido.MidiFile(type=file_type, ticks_per_beat=draw(st.integers(1, 0x7FFF)))
    for _ in range(1 if file_type == 0 else draw(st.integers(1, 3))):
        track = mido.MidiTrack()
        midi.tracks.append(track)
        for _ in range(draw(st.integers(0, 30))):
            kind = draw(st.sampled_from(["note_on", "note_off", "program_change", "set_tempo"]))
            delta = draw(st.one_of(st.integers(0, 960), st.integers(0, 0x0FFFFFFF)))
            if kind == "set_tempo":
                track.append(mido.MetaMessage("set_tempo", tempo=draw(st.integers(1, 0xFFFFFF)), time=delta))
            elif kind == "program_change":
                track.append(mido.Message(kind, program=draw(st.integers(0, 127)), time=delta))
            else:
                track.append(mido.Message(kind, note=draw(st.integers(0, 127)), velocity=draw(st.integers(0, 127)),
                                          channel=draw(st.integers(0, 15)), time=delta))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    data = bytearray(buffer.getvalue())
    if draw(st.booleans()):
        data[12:14] = draw(st.binary(min_size=2, max_size=2))  # any division, 0 and SMPTE included
    return bytes(data)


MIDI_INPUTS = st.one_of(st.binary(max_size=512), structured_midi(),
                        *[mutated(m.to_midi_bytes()) for m in REAL])


@pytest.mark.parametrize("examples", BUDGETS)
def test_midi_bytes_load_or_are_refused(examples):
    fuzz(MIDI_INPUTS, lambda data: loads_or_refuses(Melody.from_midi_bytes, data), examples, "MIDI bytes")


# ---------------------------------------------------------------------- JSON
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40)


def melody_json(tokens, version=1, metadata=None) -> str:
    return json.dumps({"format": "rlcomposer.melody", "version": version, "tokens": tokens,
                       "metadata": metadata}, allow_nan=True)


JSON_INPUTS = st.one_of(
    st.text(max_size=200),
    JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True)),
    st.builds(melody_json, st.lists(st.integers(-5, 45) | st.integers() | st.booleans() | st.floats(), max_size=80),
              st.sampled_from([1, 1, 2, None, True, 1.0]), JSON_VALUES),
    st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * depth),
    *[mutated(m.to_json().encode()).map(lambda b: b.decode("utf-8", errors="replace")) for m in REAL],
)


@pytest.mark.parametrize("examples", BUDGETS)
def test_json_loads_or_is_refused(examples):
    fuzz(JSON_INPUTS, lambda text: loads_or_refuses(Melody.from_json, text), examples, "melody JSON")


# ------------------------------------------------------------------ MusicXML
def _xml_with_numbers(original: str, numbers: list[int]) -> str:
    """Every number in the XML text replaced, in turn, by one of ``numbers`` (durations, octaves, ...)."""
    import re

    values = iter(numbers * 1000)
    return re.sub(r">(-?\d+)<", lambda m: f">{next(values)}<", original)


def _mxl(score: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="s.xml"/>'
                                                   "</rootfiles></container>")
        archive.writestr("s.xml", score)
    return buffer.getvalue()


XML = REAL[1].to_musicxml_bytes()
MUSICXML_INPUTS = st.one_of(
    st.binary(max_size=256),
    mutated(XML),
    st.lists(st.integers(-3, 10) | st.integers(-(10**9), 10**9), min_size=1, max_size=8).map(
        lambda numbers: _xml_with_numbers(XML.decode(), numbers).encode()),
    mutated(XML).map(_mxl),
    mutated(_mxl(XML)),
)


@pytest.mark.parametrize("examples", MUSICXML_BUDGETS)
def test_musicxml_bytes_load_or_are_refused(examples):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def check(data):
        try:
            melody = Melody.from_musicxml_bytes(data)
        except MelodyError as error:
            assert str(error) and "\n" not in str(error)
            return "refused"
        assert 0 < melody.num_steps <= 4096
        return "valid"

    fuzz(MUSICXML_INPUTS, check, examples, "MusicXML bytes")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024  # KiB: under 512 MiB more


# ------------------------------------------------- every numeric option of every command
NUMERIC_TYPES = {"int", "float", "positive_int", "non_negative_int", "_whole_number"}

FAIL_FAST = {
    # arguments that make each command stop right after its options are checked (a model, a
    # prior, a listener or a corpus that is not there; a database in a folder that is not there)
    ("corpus", "build"): ["--cache-dir", "{tmp}/a-file"],
    ("prior", "train"): ["--cache-dir", "{tmp}/empty", "--out", "{tmp}/out"],
    ("prior", "evaluate"): ["--cache-dir", "{tmp}/empty"],
    ("generate",): ["--model", "{tmp}/no-model", "--out", "{tmp}/out"],
    ("evaluate",): ["--model", "{tmp}/no-model"],
    ("continue",): ["--from", "{tmp}/no-opening.abc", "--out", "{tmp}/out"],
    ("tune",): ["--prior", "{tmp}/no-model", "--out", "{tmp}/out"],
    ("pool", "add"): ["--tag", "t", "--model", "{tmp}/no-model", "--db", "{tmp}/no-folder/x.sqlite3"],
    ("ratings", "simulate"): ["--listener", "no_such_module:f", "--db", "{tmp}/no-folder/x.sqlite3"],
    ("experiment", "run"): ["{tmp}/no-config.yaml", "--runs-dir", "{tmp}/out"],
    ("study", "create"): ["s1", "--tags", "t", "--db", "{tmp}/no-folder/x.sqlite3"],
    ("study", "personalise"): ["s1", "--db", "{tmp}/no-folder/x.sqlite3"],
    ("sweep", "run"): ["{tmp}/no-sweep.yaml", "--out", "{tmp}/out"],
    ("sweep", "resume"): ["{tmp}/empty"],
}


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from leaf_parsers(sub, (*path, name))


def numeric_options() -> list[tuple[tuple[str, ...], str]]:
    found = []
    for path, parser in leaf_parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and getattr(action.type, "__name__", None) in NUMERIC_TYPES | {
                    "number", "whole number"}:
                found.append((path, action.option_strings[0]))
    return found


NUMBER_TEXTS = st.one_of(
    st.sampled_from(["nan", "-nan", "inf", "-inf", "0", "-0", "-1", "1", "2", "33", "1000", "1e308", "-1e308",
                     "1e-320", "9" * 40, "0x10", "1_000", " 3 ", "", "1.5", "NaN", "Infinity"]),
    st.integers().map(str), st.floats().map(repr), st.text(max_size=6))


def test_every_numeric_option_is_fuzzed():
    assert {path for path, _ in numeric_options()} <= set(FAIL_FAST)
    assert len(numeric_options()) >= 30


@pytest.mark.parametrize("examples", BUDGETS)
def test_numeric_options_end_in_one_line_and_exit_2(tmp_path, capsys, examples):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    options = numeric_options()

    def check(case):
        (path, flag), text = case
        argv = [*path, *(a.replace("{tmp}", str(tmp_path)) for a in FAIL_FAST[path]), f"{flag}={text}"]
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse: the usage and one error line naming the option
            assert exit_.code == 2
            assert f"argument {flag}" in capsys.readouterr().err.strip().splitlines()[-1]
            outcome = "refused by the parser"
        else:
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1 and err[0].startswith("rlcomposer: error:"), (argv, err)
            outcome = "refused by the checks" if flag in err[0] else "valid (stopped later)"
        assert not (tmp_path / "out").exists()
        return outcome

    fuzz(st.tuples(st.sampled_from(options), NUMBER_TEXTS), check, examples, "numeric CLI options")


# ------------------------------------------------- every numeric key of every config
def config_classes():
    from rlcomposer.corpus.corpus import CorpusConfig
    from rlcomposer.experiments.loop import ExperimentConfig
    from rlcomposer.preferences.listeners import ListenerNoise
    from rlcomposer.preferences.reward_model import RewardModelConfig
    from rlcomposer.prior.model import PriorConfig
    from rlcomposer.prior.training import PriorTrainingConfig
    from rlcomposer.rl.dpo import DPOConfig
    from rlcomposer.rl.environment import MelodyEnvConfig
    from rlcomposer.rl.tuning import TuneConfig

    return [TuneConfig, MelodyEnvConfig, DPOConfig, PriorTrainingConfig, PriorConfig, RewardModelConfig,
            ListenerNoise, ExperimentConfig, CorpusConfig]


def numeric_fields(cls) -> list[str]:
    import typing

    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls)
            if hints[f.name] in (int, float, int | None, float | None)]


NASTY_NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 0.0, -0.0, 1, 2, 10**30, -(10**30), 1e308, 2**32,
                     2**63, True, False, None, "nan", ".inf", "1e999", "", "x", [1], {"a": 1}]),
    st.integers(), st.floats(), st.text(max_size=6))


def valid_or_refused(build) -> None:
    """``build()`` gives a config whose numbers are all finite, or raises the project's error."""
    try:
        config = build()
    except RLComposerError as error:
        assert str(error) and "\n" not in str(error)
        return "refused"
    stack = [config]
    while stack:
        item = stack.pop()
        for f in dataclasses.fields(item):
            value = getattr(item, f.name)
            if dataclasses.is_dataclass(value):
                stack.append(value)
            elif isinstance(value, float):
                assert math.isfinite(value), (f.name, value)
    json.dumps(dataclasses.asdict(config), allow_nan=False)  # what a run folder stores is valid JSON
    return "valid"


@pytest.mark.parametrize("examples", BUDGETS)
def test_every_numeric_config_key_is_validated(examples):
    cases = [(cls, name) for cls in config_classes() for name in numeric_fields(cls)]
    assert len(cases) > 80

    def check(case):
        (cls, name), value = case
        return valid_or_refused(lambda: config_from_dict(cls, {name: value}))

    fuzz(st.tuples(st.sampled_from(cases), NASTY_NUMBERS), check, examples, "numeric config keys")


@pytest.mark.parametrize("examples", BUDGETS)
def test_config_files_with_random_keys_and_values_load_or_are_refused(tmp_path, examples):
    classes = config_classes()

    @st.composite
    def config_file(draw):
        cls = draw(st.sampled_from(classes))
        names = [f.name for f in dataclasses.fields(cls)] + ["kl_beta", "dpo_beta", "noise_temperature"]
        keys = st.sampled_from(names) | st.text(max_size=10) | st.integers() | st.none()
        values = NASTY_NUMBERS | JSON_VALUES
        content = draw(st.dictionaries(keys, values, max_size=6))
        text = draw(st.one_of(st.just(yaml.safe_dump(content, allow_unicode=True)), st.text(max_size=200),
                              st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
                              st.integers(1, 5000).map(lambda depth: "a: " + "[" * depth)))
        raw = draw(st.booleans())
        return cls, text, raw and draw(st.binary(max_size=64))

    def check(case):
        cls, text, raw = case
        path = tmp_path / "config.yaml"
        if raw:
            path.write_bytes(raw)
        else:
            path.write_text(text, encoding="utf-8")
        return valid_or_refused(lambda: load_config(cls, path))

    fuzz(config_file(), check, examples, "config files")
