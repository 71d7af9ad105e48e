"""The resumable, sharded batch order and per-sample seeded augmentation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nrdseg.checkpoint.counters import DataPosition
from nrdseg.engine.data_order import BatchOrder, SeededSamples
from nrdseg.engine.rng import capture_rng, restore_rng, seeded_rng
from tests.engine_fixtures import Scenes


def _indices(order):
    return [[index for index, _ in batch] for batch in order]


def test_each_epoch_is_a_permutation_split_over_ranks():
    kwargs = dict(dataset_size=10, batch_size=2, seed=3, batches=4, world_size=2)
    rank0 = _indices(BatchOrder(rank=0, **kwargs))
    rank1 = _indices(BatchOrder(rank=1, **kwargs))
    # 10 samples, global batch 4: 2 batches per epoch, the last 2 samples dropped.
    for epoch in range(2):
        seen = [
            i
            for b in (*rank0[2 * epoch : 2 * epoch + 2], *rank1[2 * epoch : 2 * epoch + 2])
            for i in b
        ]
        assert len(seen) == len(set(seen)) == 8
    assert _indices(BatchOrder(rank=0, **kwargs)) == rank0  # deterministic
    assert rank0[:2] != rank0[2:]  # a new permutation each epoch
    assert _indices(BatchOrder(rank=0, **{**kwargs, "seed": 4})) != rank0


def test_starting_later_skips_exactly_the_consumed_batches():
    full = list(BatchOrder(dataset_size=7, batch_size=3, seed=0, batches=9))
    later = DataPosition.from_batches(5, global_batch=3, dataset_size=7, seed=0)
    order = BatchOrder(dataset_size=7, batch_size=3, seed=0, start=later, batches=4)
    assert list(order) == full[5:] and len(order) == 4


def _global_indices(start, *, batch_size, world_size, batches, dataset_size=10):
    """The samples of ``batches`` global batches from ``start``, rank by rank (what all
    processes together read), with each sample's seed."""
    orders = [
        BatchOrder(
            dataset_size=dataset_size,
            batch_size=batch_size,
            seed=3,
            start=start,
            batches=batches,
            rank=rank,
            world_size=world_size,
        )
        for rank in range(world_size)
    ]
    return [item for batches in zip(*orders, strict=True) for b in batches for item in b]


def _position_after(batches, *, global_batch, dataset_size=10):
    position = DataPosition(dataset_size=dataset_size, seed=3)
    for _ in range(batches):
        position = position.after_batch(global_batch)
    return position


@pytest.mark.parametrize(("batch_size", "world_size"), [(1, 1), (4, 1), (2, 2), (1, 4), (3, 1)])
def test_a_new_batch_size_or_world_size_goes_on_with_the_next_sample(batch_size, world_size):
    # 3 batches of 2 read 6 of epoch 0's 10 samples; whatever the new global batch, the
    # rest of the epoch comes next, once each, under the seeds a straight run gives them
    # (a batch that no longer fits ends the epoch early, as the last batch of any epoch).
    epoch0 = _global_indices(None, batch_size=10, world_size=1, batches=1)
    start = _position_after(3, global_batch=2)
    assert (start.epoch, start.offset) == (0, 6)
    global_batch = batch_size * world_size
    fits = (10 - 6) // global_batch
    rest = _global_indices(start, batch_size=batch_size, world_size=world_size, batches=fits)
    assert rest == epoch0[6 : 6 + fits * global_batch]
    # the batch after that starts epoch 1, exactly as a fresh order's epoch 1 does
    after = _global_indices(start, batch_size=batch_size, world_size=world_size, batches=fits + 1)[
        fits * global_batch :
    ]
    epoch1 = _global_indices(
        DataPosition(epoch=1, dataset_size=10, seed=3), batch_size=10, world_size=1, batches=1
    )
    assert after == epoch1[:global_batch]


def test_positions_of_batches_convert_to_the_same_samples():
    # A checkpoint that counted 7 batches of 3 (global) read 7 x 3 samples of 2 epochs.
    for batches in range(12):
        converted = DataPosition.from_batches(batches, global_batch=3, dataset_size=10, seed=3)
        assert converted.next_batch_start(3) == _position_after(
            batches, global_batch=3
        ).next_batch_start(3)


def test_a_position_of_another_permutation_is_refused():
    start = DataPosition(dataset_size=12, seed=3)
    with pytest.raises(
        ValueError, match="order of 12 samples with seed 3 cannot start an order of 10"
    ):
        BatchOrder(dataset_size=10, batch_size=2, seed=3, start=start)


def test_too_small_a_dataset_is_explained():
    with pytest.raises(ValueError, match=r"3 samples, fewer than one batch of 2 x 2"):
        BatchOrder(dataset_size=3, batch_size=2, seed=0, batches=1, world_size=2)


def test_augmentation_is_the_same_in_workers_and_in_process():
    order = BatchOrder(dataset_size=16, batch_size=4, seed=0, batches=4)
    loads = []
    for workers in (0, 2):
        loader = DataLoader(
            SeededSamples(Scenes(length=16)), batch_sampler=order, num_workers=workers
        )
        loads.append([batch["image"] for batch in loader])
    for a, b in zip(*loads, strict=True):
        assert torch.equal(a, b)
    # The random flips really happened, to some samples and not to others.
    plain = Scenes(length=16, flip=False)
    kinds = []
    for batch, images in zip(order, loads[0], strict=True):
        for (index, _), image in zip(batch, images, strict=True):
            reference = plain[index]["image"]
            assert torch.equal(image, reference) or torch.equal(image, reference.flip(-1))
            kinds.append(torch.equal(image, reference))
    assert any(kinds) and not all(kinds)


def test_seeded_samples_leave_the_callers_generators_alone():
    before = capture_rng()
    SeededSamples(Scenes())[(0, 123)]
    after = capture_rng()
    assert torch.equal(before["torch"], after["torch"]) and before["python"] == after["python"]


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    torch.save(capture_rng(), tmp_path / "rng.pt")
    expected = _draw()
    _draw()
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = _draw()
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])
    with seeded_rng(5):
        first = torch.rand(2)
    with seeded_rng(5):
        assert torch.equal(torch.rand(2), first)
