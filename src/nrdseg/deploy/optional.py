"""Import an optional dependency, or say which nrdseg extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType


def optional_import(name: str, *, extra: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"this needs {name}: pip install 'nrdseg[{extra}]'") from err
