"""Typed configs: dataclasses filled from YAML files and ``key=value`` overrides.

Every entry point owns one config dataclass (CleanRL style). This module turns
plain mappings into those dataclasses, rejecting unknown keys and values of the
wrong type with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import reprlib
import stat
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rlcomposer.errors import RLComposerError

ConfigT = TypeVar("ConfigT")


class ConfigError(RLComposerError):
    """A config file or override that does not fit its dataclass."""


MAX_CONFIG_FILE_BYTES = 1024 * 1024
"""Largest config file read (a config is a few dozen keys)."""

MAX_PROSE_FILE_BYTES = 64 * 1024
"""Largest text file read for a prose option (a study's ``--instructions-file``, ``--consent-file``)."""

MAX_YAML_VALUES = 100_000
"""Most values (scalars, lists and mappings) a YAML document may hold with its aliases expanded:
a config holds a few hundred; an alias bomb of 1 KB holds a billion."""

MAX_SHOWN_VALUE_CHARS = 80
"""Longest rendering of a value in an error message (the rest is cut and marked with ...)."""

_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist, _SHORT_REPR.maxtuple = 3, 6, 6
_SHORT_REPR.maxdict, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 4, 60, 60


def shown_value(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_SHOWN_VALUE_CHARS` on one line, however large the value is
    (a list of a billion items is never rendered whole)."""
    text = one_line(_SHORT_REPR.repr(value))
    if len(text) > MAX_SHOWN_VALUE_CHARS:
        text = text[:MAX_SHOWN_VALUE_CHARS - 3] + "..."
    return text


def read_text_file(path: str | Path, where: str | None = None,
                   max_bytes: int = MAX_CONFIG_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``, of at most ``max_bytes`` bytes.

    A folder, a device (``/dev/zero``), a FIFO or a socket is refused before it is
    opened or read, a longer file after ``max_bytes + 1`` bytes, and bytes that are
    not UTF-8 with their offset: each a one-line :class:`ConfigError` that starts
    with ``where`` (default: the path).
    """
    path = Path(path)
    where = str(path) if where is None else where
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{where}: is a folder, not a file")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{where}: not a regular file (a device, pipe or socket), not read")
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise ConfigError(f"{where}: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{where}: larger than {max_bytes:,} bytes, not read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not a text file (not UTF-8), byte 0x{data[error.start]:02x} "
                          f"at offset {error.start:,}") from None


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded_size(root: yaml.Node, where: Path | str) -> None:
    """Refuse a node graph whose aliases expand past :data:`MAX_YAML_VALUES` values, or refer to themselves.

    Counts each node once per place it appears (an alias counts its whole anchor
    again), without building anything: memoised by node, so a bomb is counted in
    as many steps as it has nodes.
    """
    counts: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            counts[key] = 1 + sum(counts[id(child)] for child in _yaml_children(node))
            continue
        if key in counts:
            continue
        if key in open_nodes:
            raise ConfigError(f"{where}: not a config (a YAML alias refers to itself)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _yaml_children(node) if id(child) not in counts)
    if counts[id(root)] > MAX_YAML_VALUES:
        raise ConfigError(f"{where}: not a config (with its YAML aliases expanded it holds "
                          f"{counts[id(root)]:,} values, more than {MAX_YAML_VALUES:,})")


def load_yaml(text: str, where: Path | str) -> Any:
    """``yaml.safe_load(text)``, refusing what would take minutes or gigabytes to build or show:
    brackets nested past :data:`MAX_CONFIG_NESTING`, aliases that expand past :data:`MAX_YAML_VALUES`
    values or refer to themselves (:class:`ConfigError` naming ``where``). YAML syntax errors
    raise :class:`yaml.YAMLError` as before."""
    _check_nesting(text, where)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"config key '{key}': bad value {shown_value(value)}")
    if origin is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {shown_value(value)}")
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        return tuple(_coerce(item, item_type, key) for item in value)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"config key '{key}': expected true or false, got {shown_value(value)}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected an integer, got {shown_value(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected an integer, got {shown_value(value)}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected a number, got {shown_value(value)}")
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key '{key}': expected a string, got {shown_value(value)}")
    return value


def _nested_fields(cls: type) -> dict[str, type]:
    """Fields of ``cls`` whose type is itself a config dataclass, by name."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if f.init and dataclasses.is_dataclass(hints[f.name])}


def _route_flat_keys(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Flat keys of a nested config go into it: ``kl_beta`` or ``env_kl_beta`` -> ``env.kl_beta``.

    A key that is no field of ``cls`` goes to the nested config field ``N`` that
    has it as a field (``kl_beta``), or as ``N_<field>`` (``noise_temperature``
    -> ``noise.temperature``), so flat YAML files and ``--set`` keys keep working
    when a config nests another.
    """
    nested = _nested_fields(cls)
    if not nested:
        return values
    own = {f.name for f in dataclasses.fields(cls) if f.init}
    routed: dict[str, Any] = {}
    inner: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in own or not isinstance(key, str):  # a key that is not text is reported as unknown
            routed[key] = value
            continue
        for name, sub in nested.items():
            sub_fields = {f.name for f in dataclasses.fields(sub) if f.init}
            sub_key = key if key in sub_fields else key[len(name) + 1:] if key.startswith(f"{name}_") else None
            if sub_key in sub_fields:
                inner.setdefault(name, {})[sub_key] = value
                break
        else:
            routed[key] = value  # unknown: reported by the caller
    for name, sub_values in inner.items():
        given = routed.get(name)
        if given is None:
            given = {}
        elif dataclasses.is_dataclass(given):
            given = config_to_dict(given)
        if not isinstance(given, dict):
            raise ConfigError(f"config key '{name}': expected a mapping of keys to values")
        routed[name] = {**given, **sub_values}
    return routed


def config_from_dict(cls: type[ConfigT], values: dict[str, Any], where: str = "config") -> ConfigT:
    """Build ``cls`` from a mapping; unknown keys and wrong types raise ConfigError.

    A field whose type is a config dataclass takes a mapping (built the same
    way) or the flat keys of :func:`_route_flat_keys`.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values")
    values = _route_flat_keys(cls, values)
    hints = typing.get_type_hints(cls)
    nested = _nested_fields(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - fields, key=str)
    if unknown:
        known = sorted(fields | {k for sub in nested.values() for k in (f.name for f in dataclasses.fields(sub))})
        raise ConfigError(f"{where}: unknown key {_shown(unknown[0])} (known keys: {', '.join(known)})")
    kwargs = {}
    for key, value in values.items():
        if key in nested and isinstance(value, dict):
            kwargs[key] = config_from_dict(nested[key], value, f"{where} key '{key}'")
        elif key in nested and isinstance(value, nested[key]):
            kwargs[key] = value
        elif key in nested:
            raise ConfigError(f"{where}: config key '{key}' expects a mapping of keys to values")
        else:
            kwargs[key] = _coerce(value, hints[key], key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {one_line(str(error))}") from None


def one_line(text: str) -> str:
    """``text`` with line breaks shown as ``\\n``: a message stays one line whatever a user typed."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _shown(key: Any) -> str:
    """A key as a message shows it: quoted, with any line break escaped."""
    if isinstance(key, str) and key.isprintable() and len(key) <= MAX_SHOWN_VALUE_CHARS:
        return f"'{key}'"
    return shown_value(key)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["lr=0.001", "epochs=3"]`` -> ``{"lr": 0.001, "epochs": 3}`` (values read as YAML)."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' is not of the form key=value")
        key, raw = pair.split("=", 1)
        try:
            result[key.strip()] = load_yaml(raw, f"override '{key.strip()}'")
        except (yaml.YAMLError, RecursionError):
            result[key.strip()] = raw
    return result


MAX_CONFIG_NESTING = 64
"""Deepest nesting of brackets in a config file (YAML takes seconds over thousands)."""


def _check_nesting(text: str, where: Path | str) -> None:
    depth = deepest = 0
    for character in text:
        if character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth = max(depth - 1, 0)
    if deepest > MAX_CONFIG_NESTING:
        raise ConfigError(f"{where}: not valid YAML (brackets nested {deepest} deep, more than {MAX_CONFIG_NESTING})")


def load_config(
    cls: type[ConfigT], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ConfigT:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``."""
    values: dict[str, Any] = {}
    where = "config"
    if path is not None:
        path = Path(path)
        where = str(path)
        text = read_text_file(path)
        try:
            loaded = load_yaml(text, path)
        except RecursionError:
            raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values")
        values.update(loaded)
    values.update(overrides or {})
    return config_from_dict(cls, values, where)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON/YAML-ready dict of a config dataclass (tuples become lists)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return config_to_dict(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
