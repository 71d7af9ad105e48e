"""Training events to ``metrics.jsonl``, the console and (when installed) TensorBoard."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from nrdseg.checkpoint.work_dir import METRICS_FILE, TENSORBOARD_DIR
from nrdseg.utils.optional import is_installed, optional_import

logger = logging.getLogger("nrdseg.train")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _scalar(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _summary(event: dict[str, Any]) -> str:
    """One console line: the scalars, then each mapping of scalars (an eval event's
    per-class ``IoU`` and ``trimap``) as ``key name value, ...`` to 3 digits."""
    parts = [f"{event['event']} iter {event['iter']}"]
    tables = []
    for key, value in event.items():
        if key in ("event", "iter") or isinstance(value, list):
            continue
        if isinstance(value, dict):
            if all(v is None or isinstance(v, (int, float)) for v in value.values()):
                tables.append(
                    f"{key} " + ", ".join(f"{k} {_scalar(v, 3)}" for k, v in value.items())
                )
            continue
        parts.append(f"{key} {_scalar(value, 4)}")
    return "  ".join(parts + tables)


class EventLog:
    """One JSON object per line in ``work_dir/metrics.jsonl``, appended across resumes.

    Non-finite floats are written as ``null`` so that every line is valid JSON. Scalars
    also go to TensorBoard (``work_dir/tb``) when the ``tensorboard`` package is there.
    """

    def __init__(self, *, work_dir: Path, console: bool = True) -> None:
        self.path = Path(work_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.console = console
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._tensorboard = _tensorboard_writer(Path(work_dir) / TENSORBOARD_DIR)

    def write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(_finite_or_none(event)) + "\n")
        self._file.flush()
        if self.console:
            tqdm.write(_summary(event))
        if self._tensorboard is not None:
            for key, value in event.items():
                if isinstance(value, (int, float)) and key != "iter":
                    self._tensorboard.add_scalar(f"{event['event']}/{key}", value, event["iter"])
            self._tensorboard.flush()

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def _tensorboard_writer(directory: Path):
    if not is_installed("tensorboard"):
        logger.debug("tensorboard is not installed; logging to %s only", METRICS_FILE)
        return None
    writers = optional_import("torch.utils.tensorboard", extra="tensorboard")
    return writers.SummaryWriter(log_dir=str(directory))
