"""The model inside the wrappers that training and deployment put around it."""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel


def unwrap_model(model: nn.Module) -> nn.Module:
    """``model`` without its DistributedDataParallel / DataParallel (``.module``) and
    torch.compile (``._orig_mod``) wrappers, in any nesting.

    Wrappers prefix every state_dict key (``module.``, ``_orig_mod.``) and DDP hides the
    model's attributes (``config``, ``meta``, ``num_classes``), so code that saves, loads,
    exports or reads a model's attributes looks through them.
    """
    while True:
        if isinstance(model, (DistributedDataParallel, DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # OptimizedModule
            model = model._orig_mod
        else:
            return model


#: State-dict key prefixes of those wrappers.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefixes(key: str) -> str:
    """A state-dict key without the ``module.`` / ``_orig_mod.`` prefixes of wrapped models,
    in any nesting (``module._orig_mod.conv1.weight`` -> ``conv1.weight``)."""
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key
