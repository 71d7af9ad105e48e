"""Training checkpoints in a work dir: ``checkpoints/iter_NNNNNN/``, ``latest``, ``best/``.

Each checkpoint is a model checkpoint (``config.yaml`` + ``model.safetensors``, loadable
with ``nrdseg.load_model``) plus ``training_state.pt`` (tensors and plain containers only,
read with ``weights_only=True``). Directories appear by rename and the ``latest`` pointer
is replaced atomically, so a crash at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
import yaml

from nrdseg.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    atomic_directory,
    atomic_write_bytes,
    write_model_files,
)
from nrdseg.models.segmentor import Segmentor

logger = logging.getLogger("nrdseg.train")

CHECKPOINTS = "checkpoints"
LATEST = "latest"
BEST = "best"
STATE_FILE = "training_state.pt"
EVAL_FILE = "eval.json"
#: What every training state holds (see ``Trainer._training_state``).
STATE_KEYS = (
    "iteration",
    "consumed_batches",
    "bad_batches",
    "best_metric",
    "best_iteration",
    "optimizer",
    "scaler",
    "rng",
)
_NAME = re.compile(r"iter_(\d+)")
_LEFTOVER = re.compile(r"\.(.+)\.(tmp|old|del)-[^.]+")


def checkpoint_dir(work_dir: Path, iteration: int) -> Path:
    return Path(work_dir) / CHECKPOINTS / f"iter_{iteration:06d}"


def write_checkpoint(
    work_dir: Path, *, model: Segmentor, iteration: int, state: dict[str, Any]
) -> Path:
    """Write one checkpoint directory, then point ``latest`` at it."""
    final = checkpoint_dir(work_dir, iteration)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_directory(final) as tmp:
        write_model_files(model, tmp)
        (tmp / STATE_FILE).write_bytes(buffer.getvalue())
    atomic_write_bytes(final.parent / LATEST, f"{final.name}\n".encode())
    return final


def write_best(work_dir: Path, *, model: Segmentor, result: dict[str, Any]) -> Path:
    """Replace ``best/`` by this model and the evaluation that made it the best."""
    final = Path(work_dir) / BEST
    with atomic_directory(final) as tmp:
        write_model_files(model, tmp)
        (tmp / EVAL_FILE).write_text(json.dumps(result, indent=1, allow_nan=False))
    return final


def remove_directory(path: Path) -> None:
    """Rename out of sight first, so a crash mid-delete never leaves half a checkpoint."""
    hidden = path.with_name(f".{path.name}.del-{uuid.uuid4().hex[:8]}")
    os.replace(path, hidden)
    shutil.rmtree(hidden)


def list_checkpoints(work_dir: Path) -> list[Path]:
    """Checkpoint directories of ``work_dir``, oldest first."""
    root = Path(work_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(_NAME.fullmatch(p.name).group(1)))


def prune_checkpoints(work_dir: Path, *, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints; returns what was removed."""
    old = list_checkpoints(work_dir)[:-keep_last]
    for path in old:
        remove_directory(path)
    return old


def remove_stale_temporaries(work_dir: Path) -> list[Path]:
    """Clear what a process killed mid-write left behind; returns what was removed.

    ``.NAME.tmp-*`` (a write not renamed into place yet) and ``.NAME.del-*`` (a pruned
    checkpoint) go. ``.NAME.old-*`` is the previous ``NAME`` set aside while a new one is
    renamed in: it goes once ``NAME`` exists, and is renamed back when the kill came
    between the two renames, so a complete ``best/`` or checkpoint is never lost.
    """
    stale = []
    for root in (Path(work_dir), Path(work_dir) / CHECKPOINTS):
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir()):
            found = _LEFTOVER.fullmatch(path.name)
            if found is None:
                continue
            name, kind = found.groups()
            if kind == "old" and not (root / name).exists():
                os.replace(path, root / name)
                logger.warning("put back %s, set aside by an interrupted write", root / name)
            else:
                stale.append(path)
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if stale:
        shown = ", ".join(p.name for p in stale)
        logger.warning("removed %d leftover(s) of an interrupted write: %s", len(stale), shown)
    return stale


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The directory ``checkpoints/latest`` names, or None when there is no checkpoint.

    Without the pointer (a kill between the first checkpoint's rename and the pointer's
    write) the newest checkpoint directory is the latest: each appeared whole, by rename.
    """
    pointer = Path(work_dir) / CHECKPOINTS / LATEST
    if pointer.is_file():
        target = pointer.parent / pointer.read_text().strip()
        source = f"{pointer} names {target.name}"
    else:
        found = list_checkpoints(work_dir)
        if not found:
            return None
        target = found[-1]
        source = f"{target} (no {LATEST} pointer)"
    if not (target / STATE_FILE).is_file():
        raise FileNotFoundError(f"{source}, which is not a checkpoint: no {STATE_FILE}")
    return target


def read_training_state(directory: Path) -> dict[str, Any]:
    """``training_state.pt``, read with ``weights_only=True``: a file that holds anything
    but tensors and plain containers (a pickle that would run code) is refused unrun."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {STATE_FILE}: not a training checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own advice (retry with weights_only=False) is wrong for a file of unknown
        # origin: keep only the line saying what it refused.
        refused = [
            line for line in str(err).splitlines() if "GLOBAL" in line or "Unsupported" in line
        ]
        raise ValueError(
            f"{path}: refused, not a training state of tensors and plain containers "
            f"({refused[0] if refused else 'not a weights-only torch file'}); nothing in it was run"
        ) from err
    except Exception as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path}: not an nrdseg training state; missing {', '.join(missing)}")
    return state


def run_config_file(work_dir: str | Path) -> Path | None:
    """``work_dir/config.yaml`` when it is a training run's config (what ``nrdseg train``
    writes), not a checkpoint's model record; None otherwise."""
    path = Path(work_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        tree = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    return path if isinstance(tree, dict) and "data" in tree and "format" not in tree else None


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory ``path`` names: itself, else a work dir's ``best/``, else
    its latest checkpoint. The one resolver of ``load_model``, eval, predict and export.

    A folder with weights or a model record is returned as is (``load_model`` then says
    what is wrong with it); a work dir without a checkpoint yet, or a folder that is
    neither, raises FileNotFoundError saying so.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a checkpoint directory or work dir: not found")
    record = (path / CONFIG_FILE).is_file() and run_config_file(path) is None
    if (path / WEIGHTS_FILE).is_file() or record:
        return path
    if (path / BEST / WEIGHTS_FILE).is_file():
        return path / BEST
    latest = latest_checkpoint(path) if path.is_dir() else None
    if latest is not None:
        return latest
    if run_config_file(path) is not None:
        raise FileNotFoundError(
            f"{path} is a training work dir without a checkpoint yet (no {BEST}/ or "
            f"{CHECKPOINTS}/{LATEST}): wait for its first checkpoint or evaluation"
        )
    raise FileNotFoundError(
        f"{path}: not a checkpoint directory (no {CONFIG_FILE} + {WEIGHTS_FILE}), nor a work dir with "
        f"{BEST}/ or {CHECKPOINTS}/{LATEST}"
    )
