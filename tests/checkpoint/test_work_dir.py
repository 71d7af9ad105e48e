"""The work dir's layout reads back what it wrote: checkpoints, training state, best result."""

from __future__ import annotations

import pytest
import torch

from nrdseg.checkpoint.counters import DataPosition, TrainingCounters
from nrdseg.checkpoint.work_dir import (
    BEST,
    EVAL_FILE,
    STATE_FILE,
    TrainingState,
    created_work_dir,
    read_best_result,
    read_checkpoint,
    read_training_state,
    write_best,
    write_checkpoint,
)
from tests.engine_fixtures import tiny_model


def _state() -> TrainingState:
    counters = TrainingCounters(
        iteration=7,
        consumed_batches=9,
        bad_batches=1,
        best_metric=0.25,
        best_iteration=5,
        skipped_samples=2,
        data_position=DataPosition(epoch=1, offset=3, dataset_size=8, seed=0),
    )
    return TrainingState(
        counters=counters,
        optimizer={"state": {0: {"momentum_buffer": torch.arange(4.0)}}, "param_groups": []},
        scaler={"scale": 1.0},
        rng=[{"torch": torch.ByteTensor([1, 2, 3])}],
        config={"train": {"iters": 10}},
    )


def test_read_checkpoint_returns_what_write_checkpoint_wrote(tmp_path):
    model = tiny_model()
    written = write_checkpoint(tmp_path, model=model, state=_state())
    checkpoint = read_checkpoint(written)
    assert checkpoint.directory == written == tmp_path / "checkpoints" / "iter_000007"
    assert checkpoint.record["model"] == model.config
    assert checkpoint.weights.keys() == model.state_dict().keys()
    assert all(torch.equal(checkpoint.weights[k], v) for k, v in model.state_dict().items())
    state, expected = checkpoint.state, _state()
    assert state.counters == expected.counters and state.config == expected.config
    momentum = state.optimizer["state"][0]["momentum_buffer"]
    assert torch.equal(momentum, torch.arange(4.0))
    assert torch.equal(state.rng[0]["torch"], torch.ByteTensor([1, 2, 3]))


def test_a_training_state_without_a_required_key_is_named(tmp_path):
    written = write_checkpoint(tmp_path, model=tiny_model(), state=_state())
    partial = {k: v for k, v in _state().to_dict().items() if k not in ("rng", "iteration")}
    torch.save(partial, written / STATE_FILE)
    with pytest.raises(ValueError, match="not an nrdseg training state; missing iteration, rng"):
        read_training_state(written)
    # keys the first training states lacked have defaults: such a state still reads
    older = {k: v for k, v in _state().to_dict().items() if k not in ("skipped_samples", "config")}
    torch.save(older, written / STATE_FILE)
    state = read_training_state(written)
    assert (state.counters.iteration, state.counters.skipped_samples, state.config) == (7, 0, None)


def test_read_best_result_returns_what_write_best_stored(tmp_path):
    assert read_best_result(tmp_path) is None
    write_best(tmp_path, model=tiny_model(), result={"iter": 4, "mIoU": 0.5})
    assert read_best_result(tmp_path) == {"iter": 4, "mIoU": 0.5}
    (tmp_path / BEST / EVAL_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=f"{EVAL_FILE}: not valid JSON"):
        read_best_result(tmp_path)


def test_a_created_work_dir_goes_again_only_while_empty_and_new(tmp_path):
    with pytest.raises(RuntimeError), created_work_dir(tmp_path / "a" / "b" / "run") as run:
        assert run.is_dir()
        raise RuntimeError("bad data")
    assert sorted(tmp_path.iterdir()) == []  # run, b and a: all made by this call
    (tmp_path / "a").mkdir()
    with pytest.raises(RuntimeError), created_work_dir(tmp_path / "a" / "run") as run:
        (run / "metrics.jsonl").write_text("{}\n")  # something was written: it stays
        raise RuntimeError("stopped")
    assert (tmp_path / "a" / "run" / "metrics.jsonl").is_file()
    with pytest.raises(KeyboardInterrupt), created_work_dir(tmp_path / "a" / "new"):
        raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["run"]
    with created_work_dir(tmp_path / "c", create=False) as other_rank:
        assert not other_rank.exists()
