"""Optional packages: the one way nrdseg imports them or asks whether they are there."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


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


class DeferredModule:
    """Stands for the module ``name`` and imports it at the first attribute access.

    It is not put in ``sys.modules`` (as ``importlib.util.LazyLoader``'s modules are):
    code that scans ``sys.modules`` (``inspect.getmodule``, which torch runs while it
    registers operators during its own imports) would otherwise import the deferred
    package in the middle of another import, a circular import inside torch.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"


def lazy_import(name: str) -> ModuleType | DeferredModule:
    """The module ``name``, imported at its first attribute access instead of now: for a
    package that is slow to import and not needed by every command (timm, which imports
    torchvision and torch._dynamo, takes several seconds). Already imported: the module
    itself. ImportError when it is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"No module named {name!r}")
    return DeferredModule(name)
