"""Self-describing model checkpoints: a directory with ``config.yaml`` + ``model.safetensors``.

Loading reads YAML and safetensors only, so a downloaded checkpoint can never run code.
Directories are written next to their destination and renamed into place, so a crash
leaves either the old checkpoint or the new one, never half of one. They and their files
get the permissions the umask gives (0755 / 0644 under 022), not tempfile's private
0700 / 0600, so that others on a shared machine can read checkpoints and outputs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from nrdseg.models.segmentor import Segmentor
from nrdseg.models.weights import WEIGHTS_FILE, LoadReport, load_matching, read_state_dict
from nrdseg.models.wrappers import unwrap_model
from nrdseg.models.zoo import LOSS_OPTIONS, create_model

logger = logging.getLogger("nrdseg")

FORMAT = "nrdseg-checkpoint/1"
CONFIG_FILE = "config.yaml"
HUB_PREFIX = "hf://"


def plain(value: Any) -> Any:
    """Tuples, paths and numpy scalars -> YAML-safe lists, strings and numbers."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def current_umask() -> int:
    """The process umask, from /proc where Linux shows it (no moment with another mask)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """The umask's modes for ``root`` and its tree: mkdtemp makes 0700, and safetensors
    writes its files 0600, whatever the umask."""
    umask = current_umask()
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o777 & ~umask)
        elif path.is_file():
            os.chmod(path, 0o666 & ~umask)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``final`` by rename.

    An existing ``final`` is set aside as ``.NAME.old-*`` for the moment between the two
    renames (a directory cannot be swapped in one); it is put back if the second fails,
    and a process killed in between leaves it for ``remove_stale_temporaries`` to restore.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _apply_umask(tmp)
        _fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file through a temporary sibling + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would outlive the rename
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def model_record(model: Segmentor) -> dict[str, Any]:
    """What ``config.yaml`` holds: the format tag, the zoo call and the dataset metadata."""
    model = unwrap_model(model)
    if not getattr(model, "config", {}).get("name"):
        raise ValueError("only models built by nrdseg.create_model can be saved")
    return plain({"format": FORMAT, "model": model.config, "meta": model.meta})


def write_model_files(model: Segmentor, directory: Path) -> None:
    """Write config.yaml + model.safetensors into an existing (temporary) directory."""
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(model_record(model), sort_keys=False))
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap_model(model).state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})


def save_pretrained(model: Segmentor, directory: str | Path) -> Path:
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


def load_weights(model: Segmentor, state: Mapping[str, torch.Tensor], *, source: str) -> None:
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


def checkpoint_directory(path: str | Path) -> Path:
    """The checkpoint directory ``path`` names: a directory itself, a training work dir's
    ``best/`` (else its latest checkpoint), or a Hub download for ``hf://org/name[@rev]``
    (config and safetensors only, with huggingface_hub).

    The one resolver behind ``load_model``, ``nrdseg eval``, ``predict`` and ``export``;
    a work dir without a checkpoint yet is an error that says so.
    """
    if str(path).startswith(HUB_PREFIX):
        from nrdseg.deploy.hub import download_checkpoint

        repo_id, _, revision = str(path)[len(HUB_PREFIX) :].partition("@")
        return download_checkpoint(repo_id, revision=revision or None)
    from nrdseg.engine.checkpointing import resolve_checkpoint

    return resolve_checkpoint(path)


def init_from_checkpoint(model: Segmentor, path: str | Path) -> LoadReport:
    """Start ``model`` from an nrdseg checkpoint of any class count (fine-tuning).

    ``path`` is what :func:`load_model` takes (checkpoint directory, training work dir,
    ``hf://org/name``) or a weights file. Every tensor whose name and shape fit is loaded;
    the rest keep ``model``'s own initialisation: with another class count these are the
    class-dependent layers (classifiers, the NRD controller's last 1x1, the aux classifier).
    The report (loaded / re-initialised / missing / unexpected) is logged and returned;
    ``ValueError`` if nothing fits.
    """
    where = Path(path)
    if where.is_file():
        weights, source_classes = where, None
    else:
        directory = checkpoint_directory(path)
        source_classes = read_record(directory)["model"]["num_classes"]
        weights = directory / WEIGHTS_FILE
    name = model.config.get("name", "model")
    report = load_matching(model, read_state_dict(weights), source=str(weights), what=name)
    classes = (
        "" if source_classes is None else f" ({source_classes} classes -> {model.num_classes})"
    )
    logger.info("init_from%s: %s", classes, report.summary())
    return report


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> Segmentor:
    """Rebuild a model from a checkpoint directory, a training work dir or ``hf://org/name``."""
    directory = checkpoint_directory(path)
    record = read_record(directory)
    options = dict(record["model"])
    name, num_classes = options.pop("name"), options.pop("num_classes")
    options["pretrained"] = False
    # The loss is training's: a model trained with Dice loads without segmentation_models_pytorch.
    options = {k: v for k, v in options.items() if k not in LOSS_OPTIONS}
    model = create_model(name, num_classes=num_classes, **options)
    model.config = dict(record["model"])
    model.meta = dict(record.get("meta") or {})
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{directory}: no {WEIGHTS_FILE}")
    load_weights(model, load_file(str(weights)), source=str(weights))
    return model.to(device).eval()
