"""Typed dataclasses from plain YAML trees, with errors that name the dotted key.

A config section is a dataclass whose fields carry type hints; :func:`from_dict` checks
every key and value against them, so a typo or a wrong type fails at start-up with the
full key, not hours later as an ``AttributeError`` deep in training.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key is unknown, missing, or holds a value of the wrong type or range."""


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def type_name(tp: Any) -> str:
    """A reader's name for a type hint: ``null or a list of 2 int``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        return f"a list of {len(args)} {type_name(args[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return tp.__name__


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own, more precise error
            return _convert(value, options[0], key)
        for option in options:
            try:
                return _convert(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, prefix=key)
    if origin is tuple:
        return _convert_sequence(value, tp, key)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected a mapping with string keys, got {value!r}")
        return dict(value)
    return _convert_scalar(value, tp, key)


def _convert_sequence(value: Any, tp: Any, key: str) -> tuple:
    args = typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        element_types = [args[0]] * len(value)
    elif len(value) != len(args):
        raise ConfigError(f"{key}: expected {type_name(tp)}, got {len(value)} values {value!r}")
    else:
        element_types = list(args)
    return tuple(
        _convert(v, t, f"{key}[{i}]")
        for i, (v, t) in enumerate(zip(value, element_types, strict=True))
    )


def _convert_scalar(value: Any, tp: type, key: str) -> Any:
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads 1e-4 (no dot) as a string; take it as the number it was meant to be.
        try:
            return float(value)
        except ValueError:
            pass
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}")


def from_dict(cls: type[T], data: Any, *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys, missing keys and bad types fail.

    Range checks live in each section's ``__post_init__``; their ``ValueError`` names the
    field, and gets the section's dotted prefix here.
    """
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"{_join(prefix, str(unknown[0]))}: unknown key; valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, spec in fields.items():
        key = _join(prefix, name)
        if name in data:
            values[name] = _convert(data[name], hints[name], key)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required ({type_name(hints[name])})")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{_join(prefix, str(err))}") from err
