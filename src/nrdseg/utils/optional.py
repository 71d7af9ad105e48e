"""Optional packages: the one way nrdseg imports them or asks whether they are there."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


def missing_message(name: str, *, extra: str) -> str:
    """``needs NAME: pip install 'nrdseg[EXTRA]'``, to say what a user without ``name`` lacks."""
    return f"needs {name}: pip install 'nrdseg[{extra}]'"


def optional_import(name: str, *, extra: str) -> ModuleType:
    """Import ``name`` (dotted names too), or raise ImportError naming ``nrdseg[extra]``."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"this {missing_message(name, extra=extra)}") from err


def is_installed(name: str) -> bool:
    """True when the top-level package of ``name`` can be imported, without importing it."""
    return importlib.util.find_spec(name.split(".")[0]) is not None
