"""A deterministic, resumable order of training batches, sharded over ranks.

Epoch ``e`` is a permutation drawn from a generator seeded with ``seed + e``; each global
batch takes the next ``batch_size x world_size`` indices and rank ``r`` gets its
``batch_size`` slice. Each sample is also given a seed from (seed, epoch, position), and
its augmentation runs under that seed, so a batch is the same whether it is loaded in the
main process or a worker, in a straight run or after a resume: resuming from ``start``
only skips the first ``start`` batches, without loading them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nrdseg.engine.rng import seeded_rng


def check_batch_fits(dataset_size: int, *, batch_size: int, world_size: int) -> None:
    """Refuse a training set smaller than one global batch (every batch is full)."""
    if dataset_size < batch_size * world_size:
        raise ValueError(
            f"the training set has {dataset_size} samples, fewer than one batch of "
            f"{batch_size} x {world_size} process(es); lower loader.batch_size"
        )


class BatchOrder:
    """Batches ``start``, ``start + 1``, ... ``stop - 1`` of this rank, as ``(index, seed)`` lists."""

    def __init__(
        self,
        *,
        dataset_size: int,
        batch_size: int,
        seed: int,
        start: int = 0,
        stop: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_batch_fits(dataset_size, batch_size=batch_size, world_size=world_size)
        global_batch = batch_size * world_size
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.stop = stop
        self.rank = rank
        self.world_size = world_size
        self.batches_per_epoch = dataset_size // global_batch

    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.dataset_size, generator=generator)

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, permutation = -1, None
        for batch in range(self.start, self.stop):
            if batch // self.batches_per_epoch != epoch:
                epoch = batch // self.batches_per_epoch
                permutation = self._permutation(epoch)
            first = (batch % self.batches_per_epoch) * self.batch_size * self.world_size
            first += self.rank * self.batch_size
            positions = range(first, first + self.batch_size)
            yield [(int(permutation[p]), sample_seed(self.seed, epoch, p)) for p in positions]


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
