"""Where a training run stands: the counters a checkpoint saves and a resume restores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nrdseg.checkpoint.work_dir import TrainingState
from nrdseg.engine.data_order import DataPosition


@dataclass(kw_only=True)
class TrainingCounters:
    """The counters of a run, copied into and out of its training state as one object.

    ``iteration``: optimizer steps done (a skipped bad batch is none). ``consumed_batches``:
    batches read, micro-batches of any size, for the record; the data order goes on from
    ``data_position``, counted in samples. ``bad_batches``: batches skipped for a
    non-finite loss or gradient. ``skipped_samples``: training samples served in place of
    unreadable ones (``on_error: skip``), over all ranks. ``best_metric`` and
    ``best_iteration``: the best evaluation's mIoU and when it was scored (None before).
    """

    data_position: DataPosition
    iteration: int = 0
    consumed_batches: int = 0
    bad_batches: int = 0
    skipped_samples: int = 0
    best_metric: float | None = None
    best_iteration: int | None = None

    def state_fields(self) -> dict[str, Any]:
        """The :class:`TrainingState` fields these counters fill, ``data_position`` as the
        plain dict ``training_state.pt`` holds (it is read with ``weights_only=True``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: TrainingState, *, data_position: DataPosition) -> TrainingCounters:
        """The counters ``state`` holds, with ``data_position`` as the resume placed it
        (:func:`nrdseg.engine.resume.resumed_position` reads older layouts too)."""
        names = [field.name for field in dataclasses.fields(cls) if field.name != "data_position"]
        return cls(data_position=data_position, **{name: getattr(state, name) for name in names})
