"""Resuming with changed settings: the data order and the schedule go on from where they were.

Positions are kept in samples and the poly schedule's progress, not in batches or in
steps of ``train.iters``; each test changes one setting a resumed run may change.
"""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch

from nrdseg.checkpoint.counters import DataPosition, TrainingCounters
from nrdseg.checkpoint.work_dir import TrainingState, latest_checkpoint, read_training_state
from nrdseg.config.run import LoaderConfig, OptimConfig
from nrdseg.engine.data_order import BatchOrder
from nrdseg.engine.resume import resumed_position, resumed_schedule
from tests.engine_fixtures import (
    RecordingScenes,
    events,
    make_trainer,
    one_thread,
    tiny_model,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

OPTIM = OptimConfig(lr=0.05, warmup_iters=0, min_lr=0.0)


def _run(work_dir, *, resume=False, until=None, batch_size=2, optim=OPTIM, **train):
    """Train on fresh RecordingScenes (resuming from ``work_dir`` when asked, stopping
    after iteration ``until``); returns the trainer and the indices it loaded."""
    dataset = RecordingScenes()
    trainer = make_trainer(
        work_dir,
        model=tiny_model(aux=False),
        dataset=dataset,
        optim=optim,
        loader=LoaderConfig(batch_size=batch_size, num_workers=0),
        **train,
    )
    if resume:
        trainer.resume(latest_checkpoint(work_dir))
    trainer.train(until=until)
    return trainer, dataset.loaded


def test_a_larger_batch_size_on_resume_reads_the_rest_of_the_epoch_once(tmp_path):
    # 2 iterations of 2 read 4 of the 16 samples; 3 of 4 then read the other 12, each once,
    # and a fourth begins epoch 1
    # (counted in batches, the resumed run went on at sample 2 x 4 = 8: 4 never seen).
    _, first = _run(tmp_path, iters=6, ckpt_interval=2, until=2)
    trainer, rest = _run(tmp_path, resume=True, batch_size=4, iters=6, ckpt_interval=6)
    epoch = first + rest[:12]
    assert sorted(epoch) == list(range(16)), epoch
    epoch1 = BatchOrder(
        dataset_size=16,
        batch_size=4,
        seed=0,
        start=DataPosition(epoch=1, dataset_size=16, seed=0),
        batches=1,
    )
    assert rest[12:] == [index for index, _ in next(iter(epoch1))]
    assert trainer.counters.data_position == DataPosition(
        epoch=1, offset=4, dataset_size=16, seed=0
    )
    assert vars(read_training_state(latest_checkpoint(tmp_path)).counters.data_position) == {
        "epoch": 1,
        "offset": 4,
        "dataset_size": 16,
        "seed": 0,
    }


def test_a_smaller_batch_size_on_resume_neither_repeats_nor_skips(tmp_path):
    # Counted in batches, 2 batches of 4 became 2 batches of 2: samples 4..7 read twice.
    _, first = _run(tmp_path, batch_size=4, iters=6, ckpt_interval=2, until=2)
    _, rest = _run(tmp_path, resume=True, batch_size=2, iters=6, ckpt_interval=6)
    assert sorted(first + rest) == list(range(16))


def test_more_gradient_accumulation_on_resume_reads_the_next_samples(tmp_path):
    _, first = _run(tmp_path, iters=4, ckpt_interval=2, until=2)
    accumulating = OptimConfig(lr=0.05, warmup_iters=0, min_lr=0.0, grad_accum=3)
    _, rest = _run(tmp_path, resume=True, optim=accumulating, iters=4, ckpt_interval=4)
    assert len(rest) == 2 * 3 * 2 and sorted(first + rest) == list(range(16))


def test_changed_intervals_on_resume_count_from_iteration_zero(tmp_path):
    _run(tmp_path, iters=8, ckpt_interval=3, log_interval=3, until=3)
    _run(tmp_path, resume=True, iters=8, ckpt_interval=2, log_interval=4, keep_last=9)
    assert [e["iter"] for e in events(tmp_path, "checkpoint")] == [3, 4, 6, 8]
    assert [e["iter"] for e in events(tmp_path, "train")] == [3, 4, 8]


def _rates(work_dir):
    return {e["iter"] - 1: e["lr"] for e in events(work_dir, "train")}


def test_a_longer_train_iters_on_resume_keeps_the_schedule_s_progress(tmp_path, caplog):
    # Straight: poly over 8 iterations. Resumed at 4 with train.iters 16: the rate goes on
    # from poly(4/8) and reaches min_lr at 16; counted from the start it jumped up to
    # poly(4/16).
    straight, _ = _run(tmp_path / "straight", iters=8, ckpt_interval=4)
    _run(tmp_path / "split", iters=8, ckpt_interval=4, until=4)
    with caplog.at_level(logging.WARNING, logger="nrdseg.train"):
        resumed, _ = _run(tmp_path / "split", resume=True, iters=16, ckpt_interval=12)
    rates = _rates(tmp_path / "split")
    assert rates[3] == straight.schedule(3)
    assert rates[4] == pytest.approx(straight.schedule(4), rel=1e-12)
    assert rates[4] != pytest.approx(make_trainer(tmp_path / "x", iters=16).schedule(4))
    steps = sorted(s for s in rates if s >= 4)
    assert all(rates[a] > rates[b] for a, b in itertools.pairwise(steps))
    assert resumed.schedule(16) == OPTIM.min_lr
    assert "train.iters changed from 8 to 16 at iteration 4" in caplog.text
    assert "keeps its progress (50%) and now ends at iteration 16" in caplog.text
    assert "min_lr" not in caplog.text  # the schedule had not ended


def test_the_re_anchored_schedule_survives_the_next_resume(tmp_path):
    _run(tmp_path / "a", iters=8, ckpt_interval=4, until=4)
    _run(tmp_path / "a", resume=True, iters=12, ckpt_interval=12)
    _run(tmp_path / "b", iters=8, ckpt_interval=4, until=4)
    _run(tmp_path / "b", resume=True, iters=12, ckpt_interval=4, until=8)  # stopped ...
    _run(tmp_path / "b", resume=True, iters=12, ckpt_interval=12)  # ... and resumed
    assert read_training_state(latest_checkpoint(tmp_path / "b")).schedule == {
        "iters": 12,
        "anchor_step": 4,
        "anchor_progress": 0.5,
    }
    assert _rates(tmp_path / "a") == _rates(tmp_path / "b")


def test_fewer_train_iters_than_done_are_refused_before_anything_loads(tmp_path):
    _run(tmp_path, iters=4, ckpt_interval=4)
    trainer = make_trainer(tmp_path, model=tiny_model(aux=False), iters=3)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"train\.iters: 3 is below iteration 4 of .*iter_000004"):
        trainer.resume(latest_checkpoint(tmp_path))
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())


def test_fewer_bad_batches_allowed_on_resume_still_trains_to_the_end(tmp_path):
    # The batch order's length was counted from max_bad_batches: one bad batch before the
    # checkpoint and max_bad_batches lowered to 0 left it one batch short (StopIteration).
    model = tiny_model(aux=False)
    original, calls = model.loss, [0]

    def loss(images, labels):
        calls[0] += 1
        terms = original(images, labels)
        return {k: v * math.nan for k, v in terms.items()} if calls[0] == 2 else terms

    model.loss = loss
    first = make_trainer(tmp_path, model=model, iters=6, ckpt_interval=3, max_bad_batches=1)
    first.train(until=3)
    trainer = make_trainer(tmp_path, model=tiny_model(aux=False), iters=6, max_bad_batches=0)
    trainer.resume(latest_checkpoint(tmp_path))
    trainer.train()
    assert (trainer.counters.iteration, trainer.counters.bad_batches) == (6, 1)


def _state(*, rng: list | None = None, config: dict | None = None, **counted) -> TrainingState:
    """A training state at iteration 4 (``counted`` changes its counters)."""
    counters = TrainingCounters(**{"iteration": 4, "consumed_batches": 4, **counted})
    return TrainingState(
        counters=counters, optimizer={}, scaler={}, rng=[{}] if rng is None else rng, config=config
    )


@pytest.mark.parametrize(("size", "seed"), [(12, 0), (10, 5)])
def test_another_training_set_or_seed_on_resume_starts_a_new_epoch(size, seed, caplog, tmp_path):
    saved = DataPosition(epoch=2, offset=6, dataset_size=10, seed=0)
    state = _state(data_position=saved)
    with caplog.at_level(logging.WARNING, logger="nrdseg.train"):
        position = resumed_position(
            state, dataset_size=size, seed=seed, batch_size=2, world_size=1, directory=tmp_path
        )
    assert position == DataPosition(epoch=3, offset=0, dataset_size=size, seed=seed)
    assert f"was trained on 10 samples in the order of train.seed 0, this run has {size}" in (
        caplog.text
    )
    assert "the 6 samples it read of epoch 2 cannot be found" in caplog.text


def test_an_old_checkpoint_s_batches_are_counted_in_its_own_batch_size(tmp_path):
    # Written by 2 processes of 3 (no data_position): 5 batches of 6 = 30 samples of 16-long
    # epochs (2 per epoch, the last 4 of each dropped): epoch 2, offset 6.
    state = _state(
        consumed_batches=5, rng=[{}, {}], config={"loader": {"batch_size": 3}, "train": {}}
    )
    position = resumed_position(
        state, dataset_size=16, seed=0, batch_size=4, world_size=1, directory=tmp_path
    )
    assert position == DataPosition(epoch=2, offset=6, dataset_size=16, seed=0)


def test_a_finished_schedule_extended_says_it_runs_at_min_lr(tmp_path, caplog):
    state = _state(iteration=4, config={"train": {"iters": 4}})
    with caplog.at_level(logging.WARNING, logger="nrdseg.train"):
        schedule = resumed_schedule(state, optim=OPTIM, iters=10, directory=tmp_path)
    assert [schedule(step) for step in (4, 7, 9)] == [OPTIM.min_lr] * 3
    assert "every further iteration runs at optim.min_lr" in caplog.text
    assert f"model.init_from: {tmp_path}" in caplog.text


def test_a_changed_learning_rate_or_warm_up_on_resume_says_how_the_rate_jumps(tmp_path, caplog):
    saved = {"lr": 0.05, "power": 0.9, "min_lr": 0.0, "warmup_iters": 0, "warmup_ratio": 0.01}
    state = _state(config={"train": {"iters": 8}, "optim": saved})
    new = OptimConfig(lr=0.05, min_lr=0.0, warmup_iters=10)
    with caplog.at_level(logging.WARNING, logger="nrdseg.train"):
        schedule = resumed_schedule(state, optim=new, iters=8, directory=tmp_path)
    before = resumed_schedule(state, optim=OPTIM, iters=8, directory=tmp_path)
    assert f"jumps from {before(4):.4g} to {schedule(4):.4g} (optim.warmup_iters changed)" in (
        caplog.text
    )
