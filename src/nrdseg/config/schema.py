"""Typed dataclasses from plain YAML trees, with errors that name the dotted key.

A config section is a dataclass whose fields carry type hints; :func:`from_dict` checks
every key and value against them, so a typo or a wrong type fails at start-up with the
full key, not hours later as an ``AttributeError`` deep in training.
"""

from __future__ import annotations

import collections.abc
import contextvars
import dataclasses
import inspect
import logging
import re
import types
import typing
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, Literal, TypeVar, Union

from nrdseg.utils.names import did_you_mean
from nrdseg.utils.yaml_read import describe_value, text_hint
from nrdseg.utils.yaml_safe import plain

T = TypeVar("T")

log = logging.getLogger("nrdseg.config")

#: Numbers written as text that convert to the annotated type (YAML 1.1 reads 1e-5 as text).
_INT_TEXT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_TEXT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
_SEQUENCES = (list, collections.abc.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping)
#: The dotted prefix of the section whose ``__post_init__`` runs (see :func:`from_dict`).
_SECTION: contextvars.ContextVar[str] = contextvars.ContextVar("section", default="")


class ConfigError(ValueError):
    """A config key is unknown, missing, or holds a value of the wrong type or range."""


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _prefix_keys(prefix: str, message: str) -> str:
    """``message`` with ``prefix`` on its first line and on each later line that names a key
    of the same part (``options.x: ...`` after ``options.y: ...``), e.g. every unknown option."""
    first, *rest = message.splitlines() or [""]
    part = first.split(":", 1)[0].split(".", 1)[0] + "."
    rest = [_join(prefix, line) if line.startswith(part) else line for line in rest]
    return "\n".join([_join(prefix, first), *rest])


def type_name(tp: Any) -> str:
    """A reader's name for a type hint: ``null or a list of 2 int``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return "any value"
    if tp is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is Literal:
        return repr(args[0]) if len(args) == 1 else "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        return f"a list of {len(args)} {type_name(args[0])}"
    if origin in _SEQUENCES:
        return f"a list of {type_name(args[0])}" if args else "a list"
    if origin in _MAPPINGS or tp in _MAPPINGS or dataclasses.is_dataclass(tp):
        if len(args) == 2 and args[1] is not Any:
            return f"a mapping of {type_name(args[0])} to {type_name(args[1])}"
        return "a mapping"
    if origin is collections.abc.Callable or tp is collections.abc.Callable:
        return "a Python callable (not something a YAML config can hold)"
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return "a path"
    return getattr(tp, "__name__", str(tp))


def mismatch(key: str, value: Any, tp: Any) -> ConfigError:
    """The error for ``value`` that is not a ``tp``: the key, the value with its YAML type,
    what was expected, and for a value YAML turned into a non-string, why and the fix."""
    hint = text_hint(value) if _takes_text(tp) else ""
    if tp is bool and isinstance(value, str):
        hint = "; write true or false, unquoted"
    return ConfigError(f"{key}: expected {type_name(tp)}, got {describe_value(value)}{hint}")


def _takes_text(tp: Any) -> bool:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return any(_takes_text(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is Literal:
        return any(isinstance(a, str) for a in typing.get_args(tp))
    return tp is str or (isinstance(tp, type) and issubclass(tp, PurePath))


def convert(value: Any, tp: Any, key: str, *, lax: bool = True) -> Any:
    """``value`` checked against the type hint ``tp``, converted where that is safe: a
    number written as text (``"1e-5"`` for a float), an int for a float, a list to a
    tuple. Other sequences stay lists and mappings dicts, as YAML gave them; a null
    fits only a hint that takes None. ``lax=False`` converts nothing (the first pass over
    a union's options, so that ``bool | str`` keeps ``"1e-5"`` as text).

    Raises :class:`ConfigError` naming ``key`` (``loss.decode[0].smooth``).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own, more precise error
            return convert(value, options[0], key, lax=lax)
        for strict in (True, False) if lax else (True,):
            for option in options:
                try:
                    return convert(value, option, key, lax=not strict)
                except ConfigError:
                    continue
        shaped = [o for o in options if _shape(o) is not None and _shape(o) == _shape(type(value))]
        if len(shaped) == 1:  # a list for the one list option: that option's precise error
            convert(value, shaped[0], key, lax=lax)
        raise mismatch(key, value, tp)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise mismatch(key, value, tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, prefix=key)
    if origin is tuple or origin in _SEQUENCES or tp in _SEQUENCES:
        return _convert_sequence(value, tp, key, lax=lax)
    if origin in _MAPPINGS or tp in _MAPPINGS:
        return _convert_mapping(value, tp, key, lax=lax)
    if origin is collections.abc.Callable or tp is collections.abc.Callable:
        raise mismatch(key, value, tp)
    return _convert_scalar(value, tp, key, lax=lax)


def _shape(tp: Any) -> str | None:
    """``"list"`` or ``"mapping"`` for container type hints (and types), else None."""
    origin = typing.get_origin(tp) or tp
    if origin is tuple or origin in _SEQUENCES:
        return "list"
    if origin in _MAPPINGS or dataclasses.is_dataclass(origin):
        return "mapping"
    return None


def _convert_sequence(value: Any, tp: Any, key: str, *, lax: bool) -> Any:
    args = typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise mismatch(key, value, tp)
    if typing.get_origin(tp) is not tuple:
        element_types = [args[0] if args else Any] * len(value)
    elif len(args) == 2 and args[1] is Ellipsis:
        element_types = [args[0]] * len(value)
    elif len(value) != len(args):
        raise ConfigError(
            f"{key}: expected {type_name(tp)}, got {len(value)} values {list(value)!r}"
        )
    else:
        element_types = list(args)
    items = [
        convert(v, t, f"{key}[{i}]", lax=lax)
        for i, (v, t) in enumerate(zip(value, element_types, strict=True))
    ]
    return tuple(items) if typing.get_origin(tp) is tuple else items


def _convert_mapping(value: Any, tp: Any, key: str, *, lax: bool) -> dict[Any, Any]:
    args = typing.get_args(tp) or (Any, Any)
    if not isinstance(value, dict):
        raise mismatch(key, value, tp)
    converted = {}
    for k, v in value.items():
        where = f"{key}.{k}"
        converted[convert(k, args[0], f"{where} (the key)", lax=lax)] = convert(
            v, args[1], where, lax=lax
        )
    return converted


def _convert_scalar(value: Any, tp: type, key: str, *, lax: bool) -> Any:
    if tp is float and lax and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            return _converted(key, value, float(value))
    if tp is int and lax and isinstance(value, str) and _INT_TEXT.match(value.strip()):
        return _converted(key, value, int(value))
    if not isinstance(tp, type):  # an annotation this checker does not know: trust it
        return value
    if issubclass(tp, PurePath) and isinstance(value, (str, PurePath)):
        return value
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise mismatch(key, value, tp)


def _converted(key: str, text: str, number: int | float) -> int | float:
    # YAML 1.1 (PyYAML) reads 1e-4 (no dot) as a string; take it as the number it was meant to be.
    log.info("%s: read the text %r as the number %r", _join(_SECTION.get(), key), text, number)
    return number


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
        key = _join(prefix, str(unknown[0]))
        hint = did_you_mean(unknown[0], fields)
        raise ConfigError(f"{key}: unknown key{hint}; valid keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, spec in fields.items():
        key = _join(prefix, name)
        if name in data:
            values[name] = convert(data[name], hints[name], key)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required ({type_name(hints[name])})")
    section = _SECTION.set(prefix)  # for the keys that __post_init__'s checks log
    try:
        return cls(**values)
    except ValueError as err:  # __post_init__ names the key within the section
        raise ConfigError(_prefix_keys(prefix, str(err))) from err
    finally:
        _SECTION.reset(section)


def field_default(cls: type, parts: Sequence[str | int]) -> Any:
    """The plain default of the field at ``parts`` below dataclass ``cls``
    (``["loss", "decode"]`` -> ``[{"type": "cross_entropy"}]``); None where a part is not
    a field or has no default."""
    value: Any = None
    for part in parts:
        if not dataclasses.is_dataclass(cls) or not isinstance(part, str):
            return None
        spec = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if spec is None:
            return None
        if spec.default is not dataclasses.MISSING:
            value = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            value = spec.default_factory()
        else:
            return None
        cls = type(value)
    return plain(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
