"""Reading state dicts safely and loading the tensors that fit, with a report of the rest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nrdseg.checkpoint.format import WEIGHTS_FILE, load_weights_only, read_weights


@dataclass
class LoadReport:
    """What a checkpoint did and did not provide for a module.

    ``mismatched`` tensors exist in both with different shapes (class-dependent layers
    when fine-tuning to another class count): the module keeps its own initialisation for
    them, as it does for ``missing`` ones. ``unexpected`` checkpoint tensors are unused.
    """

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded from {self.path}"]
        for name, keys in (
            ("re-initialised (shape differs)", self.mismatched),
            ("missing (own init kept)", self.missing),
            ("unexpected (unused)", self.unexpected),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
                parts.append(f"{len(keys)} {name}: {shown}")
        return "; ".join(parts)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch checkpoint, never unpickling code.

    A directory stands for the ``model.safetensors`` inside it (an nrdseg checkpoint).
    """
    path = Path(path)
    if path.is_dir() and (path / WEIGHTS_FILE).is_file():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_weights(path)
    state = load_weights_only(path, what="weights file")
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_matching(
    module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, what: str
) -> LoadReport:
    """Load every tensor of ``state`` whose name and shape fit ``module``; report the rest.

    Raises ``ValueError`` naming ``source`` and example keys of both when nothing fits.
    """
    own = module.state_dict()
    report = LoadReport(path=source)
    usable, seen = {}, set()
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            seen.add(key)
            report.mismatched.append(
                f"{key} (checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)})"
            )
        else:
            usable[key] = value
    if not usable:
        raise ValueError(
            f"no tensor of {source} matches the {what} ({len(state)} keys, e.g. "
            f"{', '.join(list(state)[:3])}; the {what} expects e.g. "
            f"{', '.join(list(own)[:3])})"
        )
    report.loaded = sorted(usable)
    report.missing = sorted(
        k for k in own if k not in usable.keys() | seen and not k.endswith("num_batches_tracked")
    )
    module.load_state_dict(usable, strict=False)
    return report
