"""The layout of a training run's folder (its work dir), and every file name in it.

```
WORK_DIR/
  config.yaml                  the run's resolved config (nrdseg train writes it)
  metrics.jsonl                one JSON event per line: train, eval, checkpoint, resume
  tb/                          TensorBoard events (when tensorboard is installed)
  best/                        the best model so far: a model checkpoint + eval.json
  checkpoints/latest           the name of the newest checkpoint directory
  checkpoints/iter_NNNNNN/     config.yaml + model.safetensors (a model checkpoint,
                               loadable with nrdseg.load_model) + training_state.pt
  result.json                  a study run's summary (nrdseg study)
```

``training_state.pt`` holds tensors and plain containers only and is read with
``weights_only=True``; :class:`TrainingState` is its typed view, and
:func:`read_checkpoint` reads back exactly what :func:`write_checkpoint` wrote.
Directories appear by rename and the ``latest`` pointer is replaced atomically, so a
crash at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nrdseg.checkpoint.counters import DataPosition, TrainingCounters
from nrdseg.checkpoint.format import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_weights_only,
    read_record,
    read_weights,
    write_model_files,
)
from nrdseg.utils.atomic import atomic_directory, atomic_write_bytes

logger = logging.getLogger("nrdseg.train")

#: The run's config, next to the checkpoints (same name as a checkpoint's model record).
RUN_CONFIG_FILE = CONFIG_FILE
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tb"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
BEST = "best"
STATE_FILE = "training_state.pt"
EVAL_FILE = "eval.json"
#: A study run's summary (``nrdseg.analysis.experiments``).
RESULT_FILE = "result.json"
#: The counters every training state holds (the others came later, with defaults).
_REQUIRED_COUNTERS = (
    "iteration",
    "consumed_batches",
    "bad_batches",
    "best_metric",
    "best_iteration",
)
_NAME = re.compile(r"iter_(\d+)")
_LEFTOVER = re.compile(r"\.(.+)\.(tmp|old|del)-[^.]+")


@dataclass
class TrainingState:
    """Everything a resumed run needs besides the weights, as ``training_state.pt`` holds it.

    ``counters``: where the run stands (:class:`nrdseg.checkpoint.counters.TrainingCounters`:
    iterations, batches and samples read, bad batches, the best score); ``optimizer`` and
    ``scaler`` are the state dicts of the optimizer and GradScaler; ``rng`` holds one
    random-state capture per process (rank order); ``config`` is the run's resolved config
    tree, so a resume can say what changed; ``schedule`` the poly schedule's ``iters``,
    ``anchor_step`` and ``anchor_progress``. Positions are kept in units no setting
    changes: the data order's in samples, the schedule's as progress.

    On disk the counters are top-level keys beside the others, as every version wrote
    them (0.1.0's checkpoints lack ``skipped_samples``, ``data_position``, ``config`` and
    ``schedule``).
    """

    counters: TrainingCounters
    optimizer: dict[str, Any]
    scaler: dict[str, Any]
    rng: list[Any]
    config: dict[str, Any] | None = None
    #: ``engine.optim.PolySchedule.state()``; None in older checkpoints.
    schedule: dict[str, int | float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The plain dict written to ``training_state.pt`` (no copy of the tensors)."""
        fields = [field.name for field in dataclasses.fields(self) if field.name != "counters"]
        return {
            **dataclasses.asdict(self.counters),  # data_position as a plain dict
            **{name: getattr(self, name) for name in fields},
        }

    @classmethod
    def from_dict(cls, state: Any, *, source: str) -> TrainingState:
        """The typed state of a dict read from ``source``; ValueError naming the missing
        keys, or a ``data_position`` that is not one."""
        missing = [
            key
            for key in (*_REQUIRED_COUNTERS, "optimizer", "scaler", "rng")
            if not isinstance(state, dict) or key not in state
        ]
        if missing:
            raise ValueError(
                f"{source}: not an nrdseg training state; missing {', '.join(missing)}"
            )
        names = [field.name for field in dataclasses.fields(TrainingCounters)]
        counted = {name: state[name] for name in names if name in state}
        position = counted.get("data_position")
        if position is not None:
            try:
                counted["data_position"] = DataPosition(**position)
            except TypeError as err:
                raise ValueError(
                    f"{source}: data_position {position!r} is not one ({err})"
                ) from None
        others = [f.name for f in dataclasses.fields(cls) if f.name != "counters"]
        return cls(
            counters=TrainingCounters(**counted),
            **{name: state[name] for name in others if name in state},
        )


@dataclass(frozen=True)
class Checkpoint:
    """A training checkpoint read back: where it is, its model record, weights and state."""

    directory: Path
    record: dict[str, Any]
    weights: dict[str, torch.Tensor]
    state: TrainingState


def checkpoint_dir(work_dir: Path, iteration: int) -> Path:
    """``WORK_DIR/checkpoints/iter_NNNNNN``: where the checkpoint of ``iteration`` goes."""
    return Path(work_dir) / CHECKPOINTS / f"iter_{iteration:06d}"


def write_checkpoint(work_dir: Path, *, model: nn.Module, state: TrainingState) -> Path:
    """Write ``checkpoints/iter_NNNNNN/`` for ``state.counters.iteration``, then point ``latest`` at it.

    :func:`read_checkpoint` reads it back. Returns the checkpoint directory.
    """
    final = checkpoint_dir(work_dir, state.counters.iteration)
    buffer = io.BytesIO()
    torch.save(state.to_dict(), buffer)
    with atomic_directory(final) as tmp:
        write_model_files(model, tmp)
        (tmp / STATE_FILE).write_bytes(buffer.getvalue())
    atomic_write_bytes(final.parent / LATEST, f"{final.name}\n".encode())
    return final


def write_best(work_dir: Path, *, model: nn.Module, result: dict[str, Any]) -> Path:
    """Replace ``best/`` by this model and the evaluation that made it the best
    (:func:`read_best_result` reads that evaluation back)."""
    final = Path(work_dir) / BEST
    with atomic_directory(final) as tmp:
        write_model_files(model, tmp)
        (tmp / EVAL_FILE).write_text(json.dumps(result, indent=1, allow_nan=False))
    return final


def read_best_result(work_dir: Path) -> dict[str, Any] | None:
    """The evaluation :func:`write_best` stored in ``best/eval.json``, or None without one.

    ValueError naming the file when it is not JSON.
    """
    path = Path(work_dir) / BEST / EVAL_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


@contextlib.contextmanager
def created_work_dir(work_dir: Path, *, create: bool = True) -> Iterator[Path]:
    """``work_dir`` made (with its missing parents) for the block, and made again no more
    when the block fails before anything was written into it: a ``nrdseg train`` stopped
    by bad data leaves no empty folder behind. Only folders this call created are
    removed, and only while empty; ``create=False`` (a process other than rank 0) makes
    and removes nothing.
    """
    work_dir = Path(work_dir)
    created = [p for p in (work_dir, *work_dir.parents) if not p.exists()] if create else []
    if create:
        work_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield work_dir
    except BaseException:
        for folder in created:  # deepest first
            try:
                folder.rmdir()  # refuses a folder that holds anything
            except OSError:
                break
        raise


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


def read_training_state(directory: Path) -> TrainingState:
    """``training_state.pt``, read with ``weights_only=True``: a file that holds anything
    but tensors and plain containers (a pickle that would run code) is refused unrun."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {STATE_FILE}: not a training checkpoint")
    state = load_weights_only(path, what="training state")
    return TrainingState.from_dict(state, source=str(path))


def read_checkpoint(directory: str | Path) -> Checkpoint:
    """What :func:`write_checkpoint` wrote into ``directory``: record, weights and state.

    FileNotFoundError or ValueError naming the file that is missing or unreadable.
    """
    directory = Path(directory)
    state = read_training_state(directory)
    record = read_record(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{directory}: no {WEIGHTS_FILE}")
    return Checkpoint(
        directory=directory, record=record, weights=read_weights(weights), state=state
    )


def run_config_file(work_dir: str | Path) -> Path | None:
    """``work_dir/config.yaml`` when it is a training run's config (what ``nrdseg train``
    writes), not a checkpoint's model record; None otherwise."""
    path = Path(work_dir) / RUN_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        tree = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    return path if isinstance(tree, dict) and "data" in tree and "format" not in tree else None
