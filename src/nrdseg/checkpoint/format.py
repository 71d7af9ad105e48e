"""The checkpoint format: a directory with ``config.yaml`` (the model record) and
``model.safetensors`` (the weights).

The record says which zoo model to build (``model``: the ``create_model`` call) and what
it was trained on (``meta``: class names, palette). Loading reads YAML and safetensors
only, so a downloaded checkpoint can never run code. This module knows nothing of the zoo:
it writes and reads any ``nn.Module`` that carries ``config`` and ``meta``;
``nrdseg.models.load.load_model`` rebuilds the model from a record.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
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


def load_weights_only(path: Path, *, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and ``what``.

    A pickle holding anything but tensors and plain containers (one that would run code)
    is refused unrun; torch's advice, retry with ``weights_only=False``, would run it, so
    only the line saying what was refused is kept. ValueError either way.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = [
            line for line in str(err).splitlines() if "GLOBAL" in line or "Unsupported" in line
        ]
        raise ValueError(
            f"{path}: refused, not a {what} of tensors and plain containers "
            f"({refused[0].strip() if refused else 'not a weights-only torch file'}); nothing "
            "in it was run"
        ) from err
    except Exception as err:  # torch's errors for other files name no file or cause
        raise ValueError(
            f"cannot read {path}: not a {what} torch.load can parse ({type(err).__name__}: "
            f"{err}); the file is damaged or of another format"
        ) from err


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; ValueError naming the file when it does not
    parse as one (safetensors' own error names no file)."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise
    except Exception as err:  # SafetensorError, or OSError from the memory map
        raise ValueError(
            f"{path}: cannot read as safetensors ({err}): the file is damaged or truncated, "
            "or not a safetensors file"
        ) from err


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
    except UnicodeDecodeError as err:  # else the message names no file
        raise ValueError(f"{config_path}: not a text (YAML) file ({err})") from err
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
