"""Values that ``yaml.safe_dump`` and ``json.dumps`` accept."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def plain(value: Any) -> Any:
    """Tuples, paths and numpy scalars -> YAML-safe lists, strings and numbers.

    Mappings get string keys; other values are returned unchanged.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
