"""Reading user YAML, and words for what YAML 1.1 made of a value.

PyYAML implements YAML 1.1, whose implicit types surprise: ``1e-5`` (no dot) is a string,
``010`` is the octal number 8, ``3:30`` is the base-60 number 210, ``2024-01-01`` a date,
and ``yes`` / ``no`` / ``on`` / ``off`` are booleans. :func:`load_yaml` is PyYAML's safe
loader with the first four fixed: exponent floats are floats (as in YAML 1.2 and JSON),
octal-looking and base-60 numbers are refused with their line and the fix, timestamps
stay text. Booleans and nulls stay as YAML 1.1 reads them (``photometric: yes`` is
meant); where text was expected, :func:`describe_value` and :func:`text_hint` explain it.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import yaml

#: The exponent floats YAML 1.1 leaves as strings (``1e-5``, ``1E5``, ``2.5e3``).
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without YAML 1.1's silent octal, base-60 and date readings."""

    def _refuse(self, node: yaml.Node, reading: str, fix: str) -> None:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value} is {reading} in YAML 1.1; {fix}", node.start_mark
        )

    def construct_number(self, node: yaml.ScalarNode) -> int | float:
        text = node.value
        if ":" in text:
            self._refuse(
                node,
                "a base-60 (sexagesimal) number",
                f'quote it for text ("{text}"), or write the number itself',
            )
        if node.tag.endswith(":int") and _OCTAL.match(text):
            sign = text[0] if text[0] in "+-" else ""
            digits = sign + (text.lstrip("+-").lstrip("0_") or "0")
            self._refuse(
                node,
                f"the octal number {self.construct_yaml_int(node)}",
                f'write {digits} without the leading zero, or quote it for text ("{text}")',
            )
        if node.tag.endswith(":int"):
            return self.construct_yaml_int(node)
        return self.construct_yaml_float(node)

    def construct_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_number)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_number)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_text)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def load_yaml(text: str, *, name: str | None = None) -> Any:
    """``yaml.safe_load(text)`` with ``1e-5`` a float, dates as text, and octal-looking
    (``010``) or base-60 (``3:30``) numbers refused: ``yaml.YAMLError`` naming the line
    (of file ``name``, when given)."""
    loader = _Loader(text)
    if name is not None:
        loader.name = name  # what the error marks call the text
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_as_written(text: str) -> Any:
    """The document with every scalar as the text written in it (no types resolved), to
    quote back what a user wrote: ``[a, yes]`` -> ``["a", "yes"]``."""
    loader = yaml.BaseLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def describe_value(value: Any) -> str:
    """A value as YAML shows it, with its YAML type: ``true (a YAML boolean)``."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a YAML boolean)"
    if value is None:
        return "null (a YAML null)"
    if isinstance(value, int):
        return f"{value} (a YAML integer)"
    if isinstance(value, float):
        return f"{value!r} (a YAML float)"
    if isinstance(value, str):
        return f"{value!r} (a YAML string)"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"{value.isoformat()} (a YAML date)"
    if isinstance(value, (list, tuple, dict)):
        kind = "mapping" if isinstance(value, dict) else "list"
        try:
            shown = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        except yaml.YAMLError:
            shown = repr(value)
        return f"{shown} (a YAML {kind})"
    return f"{value!r} (a {type(value).__name__})"


def text_hint(value: Any, written: str | None = None) -> str:
    """Why a scalar that should have been text is not, and the fix (quote it); ``written``
    is the text in the file, when known. Empty for values YAML did not convert."""
    if isinstance(value, bool):
        why = "YAML 1.1 reads an unquoted yes, no, on, off, true or false as a boolean"
    elif value is None:
        why = "YAML reads an unquoted null, ~ or an empty value as null"
    elif isinstance(value, (int, float, datetime.date)):
        why = "YAML reads an unquoted number or date as a number or date"
    else:
        return ""
    if written is not None:
        return f'; {why}: quote it to keep it as text: "{written}"'
    return f'; {why}: quote it to keep it as text, e.g. "{_spelling(value)}"'


def _spelling(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "null"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)
