"""A deterministic, resumable order of training batches, sharded over ranks.

Epoch ``e`` is a permutation drawn from a generator seeded with ``seed + e``; each global
batch takes the next ``batch_size x world_size`` positions of it (rank ``r`` gets its
``batch_size`` slice), and an epoch ends when the rest of its permutation is shorter than
one global batch. Each sample is also given a seed from (seed, epoch, position), and its
augmentation runs under that seed, so a batch is the same whether it is loaded in the
main process or a worker, in a straight run or after a resume.

Where a run stands is a :class:`nrdseg.checkpoint.counters.DataPosition`, counted in samples (an epoch and the
samples of its permutation consumed by all ranks together), not in batches: a run resumed
with another ``loader.batch_size``, world size or ``optim.grad_accum`` goes on with the
very next sample, neither skipping nor repeating any of the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nrdseg.checkpoint.counters import DataPosition
from nrdseg.engine.rng import seeded_rng


def check_batch_fits(dataset_size: int, *, batch_size: int, world_size: int) -> None:
    """Refuse a training set smaller than one global batch (every batch is full)."""
    if dataset_size < batch_size * world_size:
        raise ValueError(
            f"the training set has {dataset_size} samples, fewer than one batch of "
            f"{batch_size} x {world_size} process(es); lower loader.batch_size"
        )


class BatchOrder:
    """This rank's batches from ``start`` on, as ``(index, seed)`` lists: ``batches`` of
    them, or without end when None (a DataLoader's ``batch_sampler``)."""

    def __init__(
        self,
        *,
        dataset_size: int,
        batch_size: int,
        seed: int,
        start: DataPosition | None = None,
        batches: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_batch_fits(dataset_size, batch_size=batch_size, world_size=world_size)
        self.start = start or DataPosition(dataset_size=dataset_size, seed=seed)
        if (self.start.dataset_size, self.start.seed) != (dataset_size, seed):
            raise ValueError(
                f"a data position in the order of {self.start.dataset_size} samples with seed "
                f"{self.start.seed} cannot start an order of {dataset_size} with seed {seed}"
            )
        self.batch_size = batch_size
        self.batches = batches
        self.rank = rank
        self.world_size = world_size

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.start.seed + epoch)
        return torch.randperm(self.start.dataset_size, generator=generator)

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError("an endless BatchOrder has no length")
        return self.batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        global_batch = self.batch_size * self.world_size
        position, epoch, permutation = self.start, -1, None
        count = 0
        while self.batches is None or count < self.batches:
            start = position.next_batch_start(global_batch)
            if start.epoch != epoch:
                epoch, permutation = start.epoch, self._permutation(start.epoch)
            first = start.offset + self.rank * self.batch_size
            positions = range(first, first + self.batch_size)
            yield [(int(permutation[p]), sample_seed(self.start.seed, epoch, p)) for p in positions]
            position = position.after_batch(global_batch)
            count += 1


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A well-mixed 32-bit seed for one draw of one sample."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class SeededSamples(Dataset):
    """``dataset[index]`` loaded and augmented under the seed given with the index.

    Each sample also carries ``replaced``: 1 when the dataset served another sample in
    place of a bad one (``on_error="skip"``). Counted here, in whichever process loads
    the sample, and summed by the trainer from the batches: a DataLoader worker's own
    counters never reach the main process.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        index, seed = item
        before = getattr(self.dataset, "replaced", 0)
        with seeded_rng(seed):
            sample = self.dataset[index]
        return {**sample, "replaced": getattr(self.dataset, "replaced", 0) - before}
