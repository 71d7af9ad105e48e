"""Optional packages: the one way nrdseg imports them or asks whether they are there."""

from __future__ import annotations

import importlib
import importlib.util
import sys
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


def lazy_import(name: str) -> ModuleType:
    """The module ``name``, run at its first attribute access instead of now (the standard
    library's ``importlib.util.LazyLoader``): for a package that is slow to import and not
    needed by every command (timm, which imports torchvision and torch._dynamo, takes
    several seconds). Already imported: the module itself. ImportError when missing."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
