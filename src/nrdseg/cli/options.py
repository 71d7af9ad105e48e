"""Parsing of ``KEY=VALUE`` overrides shared by the subcommands."""

from __future__ import annotations

from typing import Any

import yaml


def parse_assignments(pairs: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b.c=[1, 2]"]`` -> ``{"a": 1, "b.c": [1, 2]}``, values read as YAML."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        result[key.strip()] = yaml.safe_load(value)
    return result
