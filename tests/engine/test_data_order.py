"""The resumable, sharded batch order and per-sample seeded augmentation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nrdseg.engine.data_order import BatchOrder, SeededSamples
from nrdseg.engine.rng import capture_rng, restore_rng, seeded_rng
from tests.engine_fixtures import Scenes


def _indices(order):
    return [[index for index, _ in batch] for batch in order]


def test_each_epoch_is_a_permutation_split_over_ranks():
    kwargs = dict(dataset_size=10, batch_size=2, seed=3, stop=4, world_size=2)
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
    full = list(BatchOrder(dataset_size=7, batch_size=3, seed=0, stop=9))
    assert list(BatchOrder(dataset_size=7, batch_size=3, seed=0, start=5, stop=9)) == full[5:]
    assert len(BatchOrder(dataset_size=7, batch_size=3, seed=0, start=5, stop=9)) == 4


def test_too_small_a_dataset_is_explained():
    with pytest.raises(ValueError, match=r"3 samples, fewer than one batch of 2 x 2"):
        BatchOrder(dataset_size=3, batch_size=2, seed=0, stop=1, world_size=2)


def test_augmentation_is_the_same_in_workers_and_in_process():
    order = BatchOrder(dataset_size=16, batch_size=4, seed=0, stop=4)
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
