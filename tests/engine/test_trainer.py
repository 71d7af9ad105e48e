"""The training loop: learning, checkpoints, exact resume, bad batches, accumulation, AMP."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from torch import nn

import nrdseg
from nrdseg.checkpoint.work_dir import latest_checkpoint, read_training_state
from nrdseg.config.run import LoaderConfig, OptimConfig
from nrdseg.engine.trainer import TrainingDiverged, small_validation_note
from tests.engine_fixtures import (
    CLASSES,
    Scenes,
    assert_no_leftovers,
    events,
    make_trainer,
    one_thread,
    tiny_model,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


def poison_loss(model, *, calls, how):
    """Make ``model.loss`` misbehave on the given 1-based call numbers."""
    original, count = model.loss, [0]

    def loss(images, labels):
        count[0] += 1
        if count[0] in calls:
            if how == "loss":
                return {k: v * math.nan for k, v in original(images, labels).items()}
            if how == "image":
                images = images.clone()
                images[0, 0, 0, 0] = math.nan
            if how == "buffer":
                model.neck.bottleneck[1].running_mean[0] = math.inf
        return original(images, labels)

    model.loss = loss
    return model


def test_a_few_iterations_lower_the_loss(tmp_path):
    make_trainer(tmp_path, iters=24, log_interval=4, ckpt_interval=24).train()
    losses = [e["loss"] for e in events(tmp_path, "train")]
    assert len(losses) == 6
    assert losses[-1] < 0.75 * losses[0], losses


def test_log_events_carry_loss_terms_lr_and_timing(tmp_path):
    trainer = make_trainer(tmp_path, iters=4, log_interval=2, ckpt_interval=4)
    trainer.train()
    logged = events(tmp_path, "train")
    assert [e["iter"] for e in logged] == [2, 4]
    for event in logged:
        assert {"loss", "loss_main", "loss_aux", "grad_norm", "time_per_iter", "eta_min"} <= set(
            event
        )
        # The rate of the step that finished the window.
        assert event["lr"] == pytest.approx(trainer.schedule(event["iter"] - 1))
        assert event["loss"] == pytest.approx(
            event["loss_main"] + 0.4 * event["loss_aux"], rel=1e-5
        )


def test_checkpoints_load_as_models_and_hold_the_training_state(tmp_path):
    trainer = make_trainer(tmp_path)
    trained = trainer.train()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "iter_000006"
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["iter_000003", "iter_000006", "latest"]
    latest = tmp_path / "checkpoints" / "iter_000006"
    assert sorted(p.name for p in latest.iterdir()) == [
        "config.yaml",
        "model.safetensors",
        "training_state.pt",
    ]
    loaded = nrdseg.load_model(latest)
    assert loaded.meta["classes"] == CLASSES
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), trained.eval()(x), rtol=0, atol=0)
    state = read_training_state(latest)  # weights_only=True
    assert (
        state.counters.iteration,
        state.counters.consumed_batches,
        state.counters.bad_batches,
    ) == (6, 6, 0)
    assert len(state.rng) == 1 and state.optimizer["state"]
    assert_no_leftovers(tmp_path)


def test_only_the_last_k_checkpoints_are_kept(tmp_path):
    make_trainer(tmp_path, iters=8, ckpt_interval=2, keep_last=2).train()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["iter_000006", "iter_000008", "latest"]
    removed = [e.get("removed") for e in events(tmp_path, "checkpoint")]
    assert removed == [None, None, ["iter_000002"], ["iter_000004"]]
    assert_no_leftovers(tmp_path)


class CrashingScenes(Scenes):
    """Scenes whose ``crash_at``-th load raises, like a job killed mid-run."""

    def __init__(self, *, crash_at: int) -> None:
        super().__init__()
        self.loads, self.crash_at = 0, crash_at

    def __getitem__(self, index):
        self.loads += 1
        if self.loads == self.crash_at:
            raise RuntimeError("simulated crash")
        return super().__getitem__(index)


def test_resume_after_a_crash_is_bit_identical_to_a_straight_run(tmp_path):
    # Random flips, aux-head dropout and grad accumulation: all must come back exactly.
    optim = OptimConfig(lr=0.05, warmup_iters=3, min_lr=0.0, grad_accum=2)
    common = {"iters": 8, "ckpt_interval": 4, "optim": optim}
    torch.manual_seed(0)
    straight = make_trainer(tmp_path / "straight", model=tiny_model(), **common)
    straight_model = straight.train()

    torch.manual_seed(0)
    crashed = make_trainer(
        tmp_path / "split", model=tiny_model(), dataset=CrashingScenes(crash_at=23), **common
    )
    with pytest.raises(RuntimeError, match="simulated crash"):  # during iteration 6
        crashed.train()
    assert latest_checkpoint(tmp_path / "split").name == "iter_000004"

    torch.manual_seed(1234)  # a different initialisation: the checkpoint must overwrite it
    resumed = make_trainer(tmp_path / "split", model=tiny_model(), **common)
    resumed.resume(latest_checkpoint(tmp_path / "split"))
    resumed_model = resumed.train()

    expected, got = straight_model.state_dict(), resumed_model.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    for a, b in zip(
        straight.optimizer.state.values(), resumed.optimizer.state.values(), strict=True
    ):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert resumed.counters.consumed_batches == straight.counters.consumed_batches == 16
    assert [e["iter"] for e in events(tmp_path / "split", "resume")] == [4]


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model = poison_loss(tiny_model(), calls={5}, how="loss")
    trainer = make_trainer(tmp_path, model=model, ckpt_interval=2)
    with pytest.raises(TrainingDiverged) as err:
        trainer.train()
    message = str(err.value)
    assert "non-finite loss or gradient at iteration 5" in message
    assert "iter_000004" in message and "--resume" in message
    assert latest_checkpoint(tmp_path).name == "iter_000004"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "iter_000002",
        "iter_000004",
        "latest",
    ]
    loaded = nrdseg.load_model(tmp_path / "checkpoints" / "iter_000004")
    assert all(torch.isfinite(t).all() for t in loaded.state_dict().values())
    assert read_training_state(latest_checkpoint(tmp_path)).counters.iteration == 4
    assert [e["iter"] for e in events(tmp_path, "bad_batch")] == [5]
    assert_no_leftovers(tmp_path)


def test_a_non_finite_loss_before_any_checkpoint_says_so(tmp_path):
    model = poison_loss(tiny_model(), calls={1}, how="loss")
    with pytest.raises(TrainingDiverged, match="iteration 1 .*no checkpoint had been written yet"):
        make_trainer(tmp_path, model=model).train()


def test_bad_batches_are_skipped_up_to_the_limit(tmp_path):
    # A NaN pixel corrupts BatchNorm's running statistics in the forward pass; skipping
    # the batch must put them back, or the final checkpoint would refuse to be written.
    model = poison_loss(tiny_model(), calls={3}, how="image")
    trainer = make_trainer(tmp_path, model=model, max_bad_batches=1)
    trainer.train()
    counters = trainer.counters
    assert (counters.iteration, counters.bad_batches, counters.consumed_batches) == (6, 1, 7)
    (bad,) = events(tmp_path, "bad_batch")
    assert (bad["iter"], bad["count"], bad["loss"]) == (3, 1, None)  # NaN logged as null
    assert read_training_state(latest_checkpoint(tmp_path)).counters.bad_batches == 1


def test_more_bad_batches_than_allowed_stop_training(tmp_path):
    model = poison_loss(tiny_model(), calls={2, 4}, how="loss")
    with pytest.raises(
        TrainingDiverged, match=r"2 bad batch\(es\), more than train\.max_bad_batches = 1"
    ):
        make_trainer(tmp_path, model=model, max_bad_batches=1).train()


def test_non_finite_weights_are_never_saved(tmp_path):
    # In training mode BatchNorm normalises with batch statistics, so a broken running
    # mean leaves the loss finite; the checkpoint writer must still refuse it.
    model = poison_loss(tiny_model(), calls={3}, how="buffer")
    with pytest.raises(
        TrainingDiverged, match=r"non-finite values in neck\.bottleneck\.1\.running_mean"
    ):
        make_trainer(tmp_path, model=model, ckpt_interval=2).train()
    assert latest_checkpoint(tmp_path).name == "iter_000002"


def test_the_best_evaluation_is_kept_in_best(tmp_path):
    scores = iter([0.2, 0.6, 0.4])
    modes = []

    def evaluator(model):
        modes.append(model.training)
        iou = next(scores)
        return {
            "mIoU": iou,
            "mAcc": 0.5,
            "aAcc": 0.9,
            "IoU": [iou] * 3,
            "trimap": {3: 0.1},
            "classes": CLASSES,
        }

    trainer = make_trainer(tmp_path, evaluator=evaluator, eval_interval=2)
    trainer.train()
    assert modes == [False, False, False] and trainer.model.training
    assert [(e["iter"], e["mIoU"]) for e in events(tmp_path, "eval")] == [
        (2, 0.2),
        (4, 0.6),
        (6, 0.4),
    ]
    record = json.loads((tmp_path / "best" / "eval.json").read_text())
    assert (record["iter"], record["mIoU"], record["IoU"]["stripe"]) == (4, 0.6, 0.6)
    assert (trainer.counters.best_metric, trainer.counters.best_iteration) == (0.6, 4)
    assert nrdseg.load_model(tmp_path / "best").meta["classes"] == CLASSES
    assert read_training_state(latest_checkpoint(tmp_path)).counters.best_metric == 0.6


def _constant_evaluator(model):
    return {"mIoU": 0.5, "mAcc": 0.5, "aAcc": 0.9, "IoU": [0.5] * 3, "classes": CLASSES}


def test_a_small_validation_set_is_named_at_start_at_the_end_and_in_best(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="nrdseg.train"):
        make_trainer(
            tmp_path, evaluator=_constant_evaluator, val_images=10, eval_interval=2
        ).train()
    notes = [r.getMessage() for r in caplog.records if "small validation set" in r.getMessage()]
    assert len(notes) == 2 and notes[1].startswith("best/ (iteration 2, mIoU 0.5000): small")
    assert "10 image(s), fewer than 100" in notes[0] and "s/sqrt(10) = 3-6 points" in notes[0]
    assert "best/ is chosen by mIoU on these same images" in notes[0]
    record = json.loads((tmp_path / "best" / "eval.json").read_text())
    assert record["warning"] == notes[0]


def test_a_validation_set_of_100_images_is_not_small(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="nrdseg.train"):
        trainer = make_trainer(tmp_path, evaluator=_constant_evaluator, val_images=100)
        trainer.train()
    assert "small validation set" not in caplog.text and trainer.validation_note is None
    assert "warning" not in json.loads((tmp_path / "best" / "eval.json").read_text())
    # one evaluation at the end picks nothing: the note says only that the score is noisy
    assert "best/'s mIoU is that noisy" in small_validation_note(5, selecting=False)


def _group_norm_everywhere(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(1, child.num_features))
        else:
            _group_norm_everywhere(child)
    return module


def test_gradient_accumulation_matches_the_larger_batch(tmp_path):
    # Exactly comparable only without batch statistics (GroupNorm instead of BatchNorm),
    # without dropout (no aux head), and with the same number of labelled pixels in each
    # micro-batch (every scene has 3 ignored pixels), so the mean of the micro-batch
    # losses is the loss of the whole batch.
    def run(batch_size, accum):
        torch.manual_seed(0)
        model = _group_norm_everywhere(tiny_model(aux=False))
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        make_trainer(
            tmp_path / f"b{batch_size}",
            model=model,
            iters=3,
            optim=OptimConfig(lr=0.05, warmup_iters=0, min_lr=0.0, grad_accum=accum),
            loader=LoaderConfig(batch_size=batch_size, num_workers=0),
        ).train()
        return initial, model.state_dict()

    initial, big = run(4, 1)
    _, accumulated = run(2, 2)
    assert any(not torch.equal(value, initial[key]) for key, value in big.items())
    for key, value in big.items():
        torch.testing.assert_close(accumulated[key], value, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    trainer = make_trainer(tmp_path, iters=2, amp="bf16", ckpt_interval=2)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    model = trainer.train()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(math.isfinite(e["loss"]) for e in events(tmp_path, "train"))


def test_fp16_needs_cuda(tmp_path):
    with pytest.raises(ValueError, match=r"train\.amp: 'fp16' needs a CUDA device"):
        make_trainer(tmp_path, amp="fp16")


def test_model_and_dataset_must_agree_on_classes(tmp_path):
    with pytest.raises(ValueError, match="predicts 5 classes but the training set has 3"):
        make_trainer(tmp_path, model=tiny_model(num_classes=5))
