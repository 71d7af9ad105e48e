"""nrdseg: high-resolution semantic segmentation with Dynamic Neural Representational Decoders.

The names below are imported at first use (PEP 562), so that ``import nrdseg`` and the
command line start without importing torch and timm until a command needs them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from nrdseg.utils.version import __version__

if TYPE_CHECKING:
    from nrdseg.checkpoint.format import save_pretrained
    from nrdseg.models import Segmentor, create_model, list_models, register_model
    from nrdseg.models.load import load_model

#: Public name -> the module that defines it.
_EXPORTS = {
    "Segmentor": "nrdseg.models",
    "create_model": "nrdseg.models",
    "list_models": "nrdseg.models",
    "register_model": "nrdseg.models",
    "load_model": "nrdseg.models.load",
    "save_pretrained": "nrdseg.checkpoint.format",
}

__all__ = [
    "Segmentor",
    "__version__",
    "create_model",
    "list_models",
    "load_model",
    "register_model",
    "save_pretrained",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # nrdseg.models, nrdseg.data, ...
    else:
        raise AttributeError(f"module 'nrdseg' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
