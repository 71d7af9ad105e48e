"""The checkpoint format: a directory with ``config.yaml`` (the model record) and
``model.safetensors`` (the weights).

The record says which zoo model to build (``model``: the ``create_model`` call) and what
it was trained on (``meta``: class names, palette). Loading reads YAML and safetensors
only, so a downloaded checkpoint can never run code. This module knows nothing of the zoo:
it writes and reads any ``nn.Module`` that carries ``config`` and ``meta``;
``nrdseg.models.load.load_model`` rebuilds the model from a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from nrdseg.utils.atomic import atomic_directory
from nrdseg.utils.wrappers import unwrap_model
from nrdseg.utils.yaml_safe import plain

FORMAT = "nrdseg-checkpoint/1"
#: The model record inside a checkpoint directory.
CONFIG_FILE = "config.yaml"
#: The weights file inside a checkpoint directory.
WEIGHTS_FILE = "model.safetensors"


def model_record(model: nn.Module) -> dict[str, Any]:
    """What ``config.yaml`` holds: the format tag, the zoo call and the dataset metadata."""
    model = unwrap_model(model)
    if not getattr(model, "config", {}).get("name"):
        raise ValueError("only models built by nrdseg.create_model can be saved")
    return plain({"format": FORMAT, "model": model.config, "meta": model.meta})


def write_model_files(model: nn.Module, directory: Path) -> None:
    """Write config.yaml + model.safetensors into an existing (temporary) directory."""
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(model_record(model), sort_keys=False))
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap_model(model).state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})


def save_pretrained(model: nn.Module, directory: str | Path) -> Path:
    """Save ``model`` as a self-describing checkpoint directory, atomically."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        write_model_files(model, tmp)
    return directory


def read_record(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.yaml`` of a checkpoint directory, checked for its format."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} is not an nrdseg checkpoint: no {CONFIG_FILE}")
    try:
        record = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{config_path}: not valid YAML ({err})") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{config_path}: expected format {FORMAT!r}, got {record!r:.200}")
    model = record.get("model")
    if not isinstance(model, dict) or "name" not in model or "num_classes" not in model:
        raise ValueError(f"{config_path}: 'model' must give at least 'name' and 'num_classes'")
    return record


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Strictly load ``state`` into ``model`` (through DDP / torch.compile wrappers), or
    explain every key that does not fit."""
    model = unwrap_model(model)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or mismatched:
        lines = [
            f"{source} does not fit this {model.config.get('name', 'model')} "
            f"with {model.num_classes} classes:"
        ]
        for title, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if keys:
                shown = "; ".join(keys[:6]) + (
                    f"; ... ({len(keys)} in all)" if len(keys) > 6 else ""
                )
                lines.append(f"  {title}: {shown}")
        lines.append(
            "  (to start another model or class count from these weights, fine-tune with "
            "init_from / nrdseg train --init-from)"
        )
        raise ValueError("\n".join(lines))
    model.load_state_dict(dict(state))
