"""Where a training run stands: the counters a checkpoint saves and a resume restores,
and the data order's position among them (``training_state.pt`` holds them flat, see
:class:`nrdseg.checkpoint.work_dir.TrainingState`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class DataPosition:
    """How far a run has read: ``offset`` samples of epoch ``epoch``'s permutation, over
    all ranks. ``dataset_size`` and ``seed`` name the permutation the offset counts in."""

    epoch: int = 0
    offset: int = 0
    dataset_size: int
    seed: int

    @classmethod
    def from_batches(
        cls, batches: int, *, global_batch: int, dataset_size: int, seed: int
    ) -> DataPosition:
        """The position after ``batches`` global batches of ``global_batch`` samples (how
        checkpoints written before positions were kept in samples count it)."""
        per_epoch = dataset_size // global_batch
        return cls(
            epoch=batches // per_epoch,
            offset=(batches % per_epoch) * global_batch,
            dataset_size=dataset_size,
            seed=seed,
        )

    def next_batch_start(self, global_batch: int) -> DataPosition:
        """Where the next batch of ``global_batch`` samples starts: here, or at the next
        epoch when the rest of this one is shorter than a batch."""
        if self.offset + global_batch <= self.dataset_size:
            return self
        return DataPosition(epoch=self.epoch + 1, dataset_size=self.dataset_size, seed=self.seed)

    def after_batch(self, global_batch: int) -> DataPosition:
        """The position once the next batch of ``global_batch`` samples is consumed."""
        start = self.next_batch_start(global_batch)
        return DataPosition(
            epoch=start.epoch,
            offset=start.offset + global_batch,
            dataset_size=self.dataset_size,
            seed=self.seed,
        )


@dataclass(kw_only=True)
class TrainingCounters:
    """The counters of a run, saved into and restored from its training state as one object.

    ``iteration``: optimizer steps done (a skipped bad batch is none). ``consumed_batches``:
    batches read, micro-batches of any size, for the record; the data order goes on from
    ``data_position``, counted in samples (None only in checkpoints written before
    positions were kept in samples: a resume converts ``consumed_batches`` with their own
    config, ``nrdseg.engine.resume.resumed_position``). ``bad_batches``: batches skipped
    for a non-finite loss or gradient. ``skipped_samples``: training samples served in
    place of unreadable ones (``on_error: skip``), over all ranks. ``best_metric`` and
    ``best_iteration``: the best evaluation's mIoU and when it was scored (None before).
    """

    iteration: int = 0
    consumed_batches: int = 0
    bad_batches: int = 0
    skipped_samples: int = 0
    best_metric: float | None = None
    best_iteration: int | None = None
    data_position: DataPosition | None = None
