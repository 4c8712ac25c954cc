"""Typed configs: dataclasses filled from YAML files and ``key=value`` overrides.

Every entry point owns one config dataclass (CleanRL style). This module turns
plain mappings into those dataclasses, rejecting unknown keys and values of the
wrong type with a message that names the key.
"""

from __future__ import annotations

import dataclasses
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
        raise ConfigError(errors[0] if errors else f"config key '{key}': bad value {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
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
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
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
    return f"'{key}'" if isinstance(key, str) and key.isprintable() else repr(key)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["lr=0.001", "epochs=3"]`` -> ``{"lr": 0.001, "epochs": 3}`` (values read as YAML)."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' is not of the form key=value")
        key, raw = pair.split("=", 1)
        _check_nesting(raw, f"override '{key.strip()}'")
        try:
            result[key.strip()] = yaml.safe_load(raw)
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
        try:
            if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
                raise ConfigError(f"{path}: larger than {MAX_CONFIG_FILE_BYTES:,} bytes, not a config file")
            text = path.read_text(encoding="utf-8")
            _check_nesting(text, path)
            loaded = yaml.safe_load(text)
        except OSError as error:
            raise ConfigError(f"{path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
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
