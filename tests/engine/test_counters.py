"""A run's counters travel into and out of its training state as one object, and a
checkpoint in the layout ``training_state.pt`` has today resumes to the same counters."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nrdseg.checkpoint.work_dir import STATE_FILE, TrainingState, read_training_state
from nrdseg.engine.counters import TrainingCounters
from nrdseg.engine.data_order import DataPosition
from nrdseg.engine.rng import capture_rng
from tests.engine_fixtures import make_trainer, one_thread, tiny_model

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

COUNTERS = TrainingCounters(
    data_position=DataPosition(epoch=0, offset=10, dataset_size=16, seed=0),
    iteration=4,
    consumed_batches=5,
    bad_batches=1,
    skipped_samples=2,
    best_metric=0.6,
    best_iteration=4,
)


def test_the_counters_fill_the_training_state_and_come_back_unchanged():
    fields = COUNTERS.state_fields()
    assert fields["data_position"] == {"epoch": 0, "offset": 10, "dataset_size": 16, "seed": 0}
    state = TrainingState(**fields, optimizer={}, scaler={}, rng=[])
    assert (state.iteration, state.consumed_batches, state.bad_batches) == (4, 5, 1)
    assert (state.skipped_samples, state.best_metric, state.best_iteration) == (2, 0.6, 4)
    back = TrainingCounters.from_state(state, data_position=COUNTERS.data_position)
    assert back == COUNTERS
    # every counter is a field of the training state: none is left behind on a save
    names = {field.name for field in dataclasses.fields(TrainingState)}
    assert {field.name for field in dataclasses.fields(TrainingCounters)} <= names


def _today_s_state(trainer) -> dict:
    """``training_state.pt`` as the code of issue 23's start wrote it: one flat dict."""
    return {
        "iteration": 4,
        "consumed_batches": 5,
        "bad_batches": 1,
        "best_metric": 0.6,
        "best_iteration": 4,
        "optimizer": trainer.optimizer.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "rng": [capture_rng()],
        "skipped_samples": 2,
        "config": None,
        "data_position": {"epoch": 0, "offset": 10, "dataset_size": 16, "seed": 0},
        "schedule": {"iters": 8, "anchor_step": 0, "anchor_progress": 0.0},
    }


def test_a_checkpoint_in_today_s_layout_resumes_to_its_counters(tmp_path):
    directory = tmp_path / "checkpoints" / "iter_000004"
    writer = make_trainer(tmp_path / "unused", model=tiny_model(aux=False), iters=8)
    writer.model.save_pretrained(directory)
    torch.save(_today_s_state(writer), directory / STATE_FILE)

    trainer = make_trainer(tmp_path, model=tiny_model(aux=False), iters=8, ckpt_interval=4)
    trainer.resume(directory)
    assert trainer.counters == COUNTERS
    trainer.train()
    saved = read_training_state(tmp_path / "checkpoints" / "iter_000008")
    # 4 more iterations of one batch of 2: epoch 0 ends at sample 16, epoch 1 is at 2
    assert (saved.iteration, saved.consumed_batches, saved.bad_batches) == (8, 9, 1)
    assert (saved.skipped_samples, saved.best_metric, saved.best_iteration) == (2, 0.6, 4)
    assert saved.data_position == {"epoch": 1, "offset": 2, "dataset_size": 16, "seed": 0}
