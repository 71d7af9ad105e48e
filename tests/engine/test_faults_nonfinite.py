"""Injected NaN / inf losses and gradients: a clear stop, or a bounded number of skips.

``tests/test_trainer.py`` covers a NaN loss, a NaN pixel and a broken BatchNorm buffer;
these add an inf loss, NaN and inf gradients behind a finite loss, the skip count in
``metrics.jsonl`` across a resume, and ``train.max_bad_batches`` from the command line.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import nrdseg
from nrdseg.checkpoint.work_dir import latest_checkpoint, read_training_state
from nrdseg.cli import main
from nrdseg.engine.trainer import TrainingDiverged
from tests.conftest import CPU
from tests.engine_fixtures import (
    assert_no_leftovers,
    events,
    make_trainer,
    one_thread,
    tiny_model,
    write_tiny_config,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``factor`` (inf, NaN)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def poisoned(model: nrdseg.Segmentor, *, calls: set[int], how: str) -> nrdseg.Segmentor:
    """``model`` whose ``loss`` is inf, or has a finite value but NaN / inf gradients,
    on the given 1-based calls."""
    original, count = model.loss, [0]

    def loss(images, labels):
        count[0] += 1
        losses = original(images, labels)
        if count[0] in calls:
            if how == "inf loss":
                losses = {k: v * math.inf for k, v in losses.items()}
            else:
                factor = math.nan if how == "NaN gradient" else math.inf
                losses["loss"] = _ScaleGradient.apply(losses["loss"], factor)
        return losses

    model.loss = loss
    return model


HOWS = ["inf loss", "NaN gradient", "inf gradient"]


@pytest.mark.parametrize("how", HOWS)
def test_a_non_finite_step_stops_with_the_last_good_checkpoint_intact(tmp_path, how):
    model = poisoned(tiny_model(), calls={3}, how=how)
    trainer = make_trainer(tmp_path, model=model, ckpt_interval=2)
    with pytest.raises(TrainingDiverged) as stopped:
        trainer.train()
    message = str(stopped.value)
    previous = tmp_path / "checkpoints" / "iter_000002"
    assert message.startswith("training stopped: non-finite loss or gradient at iteration 3 (")
    assert message.endswith(
        "1 bad batch(es), more than train.max_bad_batches = 0; the last good checkpoint is "
        f"{previous} (continue with --resume)"
    )
    shown = dict(part.rsplit(" ", 1) for part in message.split("(", 1)[1].split(")")[0].split(", "))
    if how == "inf loss":
        assert shown["loss"] == "inf"
    else:  # the loss itself is finite: only the gradient gives the batch away
        assert math.isfinite(float(shown["loss"])) and shown["grad_norm"] in ("nan", "inf")
    assert latest_checkpoint(tmp_path) == previous
    loaded = nrdseg.load_model(previous)
    assert all(
        torch.isfinite(t).all() for t in loaded.state_dict().values() if t.is_floating_point()
    )
    assert [e["iter"] for e in events(tmp_path, "bad_batch")] == [3]
    assert [e["iter"] for e in events(tmp_path, "checkpoint")] == [2]
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("how", HOWS)
def test_max_bad_batches_skips_them_and_counts_them(tmp_path, how):
    model = poisoned(tiny_model(), calls={2, 5}, how=how)
    trainer = make_trainer(tmp_path, model=model, max_bad_batches=2)
    trained = trainer.train()
    counters = trainer.counters
    assert (counters.iteration, counters.bad_batches, counters.consumed_batches) == (6, 2, 8)
    assert [(e["iter"], e["count"]) for e in events(tmp_path, "bad_batch")] == [(2, 1), (4, 2)]
    assert [e["iter"] for e in events(tmp_path, "train")] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(e["loss"]) for e in events(tmp_path, "train"))
    assert all(torch.isfinite(p).all() for p in trained.parameters())
    assert read_training_state(latest_checkpoint(tmp_path)).counters.bad_batches == 2


def test_the_bad_batch_limit_holds_for_the_whole_run_across_a_resume(tmp_path):
    model = poisoned(tiny_model(), calls={2}, how="inf loss")
    make_trainer(tmp_path, model=model, max_bad_batches=1).train(until=3)
    assert read_training_state(latest_checkpoint(tmp_path)).counters.bad_batches == 1
    # A new process: its model's second batch is bad too, the run's second in all.
    second = make_trainer(
        tmp_path, model=poisoned(tiny_model(), calls={2}, how="NaN gradient"), max_bad_batches=1
    )
    second.resume(latest_checkpoint(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"iteration 5 .*2 bad batch\(es\), more than"):
        second.train()
    assert [(e["iter"], e["count"]) for e in events(tmp_path, "bad_batch")] == [(2, 1), (5, 2)]
    assert latest_checkpoint(tmp_path).name == "iter_000003"


def test_max_bad_batches_from_the_command_line(tmp_path, monkeypatch, capsys):
    # lr 1e30 makes every step after the first diverge; two are skipped, the third stops.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = write_tiny_config(tmp_path / "tiny.yaml")
    work = tmp_path / "run"
    args = ["train", *CPU, str(config), "--work-dir", str(work), "--set", "optim.lr=1e30"]
    assert main([*args, "--set", "train.max_bad_batches=2"]) == 1
    assert "3 bad batch(es), more than train.max_bad_batches = 2" in capsys.readouterr().err
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [e["count"] for e in lines if e["event"] == "bad_batch"] == [1, 2, 3]
