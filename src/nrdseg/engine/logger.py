"""Training events to ``metrics.jsonl``, the console and (when installed) TensorBoard."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger("nrdseg.train")

METRICS_FILE = "metrics.jsonl"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _summary(event: dict[str, Any]) -> str:
    parts = [f"{event['event']} iter {event['iter']}"]
    for key, value in event.items():
        if key in ("event", "iter") or isinstance(value, (dict, list)):
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


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
        self._tensorboard = _tensorboard_writer(Path(work_dir) / "tb")

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
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.debug("tensorboard is not installed; logging to %s only", METRICS_FILE)
        return None
    return SummaryWriter(log_dir=str(directory))
