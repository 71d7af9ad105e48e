"""A run's counters travel into and out of its training state as one object, which the
state embeds, and a checkpoint in the layout ``training_state.pt`` has always had (the
counters as top-level keys) resumes to the same counters."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nrdseg.checkpoint.counters import DataPosition, TrainingCounters
from nrdseg.checkpoint.work_dir import STATE_FILE, TrainingState, read_training_state
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


def test_the_training_state_embeds_the_counters_and_writes_them_flat():
    state = TrainingState(counters=COUNTERS, optimizer={}, scaler={}, rng=[])
    flat = state.to_dict()
    assert flat["data_position"] == {"epoch": 0, "offset": 10, "dataset_size": 16, "seed": 0}
    assert (flat["iteration"], flat["consumed_batches"], flat["bad_batches"]) == (4, 5, 1)
    assert (flat["skipped_samples"], flat["best_metric"], flat["best_iteration"]) == (2, 0.6, 4)
    counter_names = {field.name for field in dataclasses.fields(TrainingCounters)}
    assert "counters" not in flat and counter_names <= set(flat)
    back = TrainingState.from_dict(flat, source="test")
    assert back.counters == COUNTERS and back.counters is not COUNTERS


def test_a_position_that_is_not_one_names_the_file():
    flat = TrainingState(counters=COUNTERS, optimizer={}, scaler={}, rng=[]).to_dict()
    with pytest.raises(ValueError, match=r"^x/training_state.pt: data_position \{'epoch': 0\}"):
        TrainingState.from_dict(
            {**flat, "data_position": {"epoch": 0}}, source="x/training_state.pt"
        )


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
    assert saved.counters == dataclasses.replace(
        COUNTERS,
        iteration=8,
        consumed_batches=9,
        data_position=DataPosition(epoch=1, offset=2, dataset_size=16, seed=0),
    )
