"""A full disk (ENOSPC) at each step of writing a checkpoint or ``best/``.

Training stops with a message naming what could not be written and the checkpoint to
resume from; the previous checkpoint and ``best/`` stay intact and loadable, nothing
temporary is left behind, and resuming reaches the weights of an uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
from typing import NamedTuple

import pytest
import torch
from safetensors.torch import load_file

import nrdseg
from nrdseg.checkpoint import format as checkpoint_format
from nrdseg.checkpoint import work_dir
from nrdseg.checkpoint.work_dir import latest_checkpoint, read_training_state
from nrdseg.cli import main
from nrdseg.engine.trainer import TrainingStopped
from nrdseg.utils import atomic
from tests.conftest import CPU
from tests.engine_fixtures import (
    CLASSES,
    assert_no_leftovers,
    events,
    make_trainer,
    one_thread,
    tiny_model,
    write_tiny_config,
)
from tests.fault_injection import fail_nth_call

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

ITERS = 6  # checkpoints and evaluations at 2, 4, 6; the full disk strikes at 4


def _disk_full() -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class Full(NamedTuple):
    """ENOSPC ``when`` the ``nth`` call of ``owner.name`` whose path arguments match."""

    owner: object
    name: str
    pattern: str
    nth: int = 1
    when: str = "before"
    #: What the message says could not be written (under the work dir).
    what: str = "checkpoints/iter_000004"


CASES = {
    "model.safetensors": Full(checkpoint_format, "save_file", r"iter_000004", when="after"),
    "training_state.pt": Full(pathlib.Path, "write_bytes", r"iter_000004.*training_state\.pt$"),
    "fsync": Full(atomic, "_fsync_tree", r"iter_000004"),
    "directory-rename": Full(os, "replace", r"/iter_000004$"),
    "latest-pointer-rename": Full(os, "replace", r"/latest$", nth=2),
    "best-weights": Full(checkpoint_format, "save_file", r"best", nth=2, what="best"),
    "best-rename-after-the-old-one-is-set-aside": Full(
        os, "replace", r"\.best\.tmp-.* .*/best$", nth=2, what="best"
    ),
}


def improving(model):
    """An evaluator whose mIoU grows with every call, so that ``best/`` is rewritten."""
    improving.calls += 1
    miou = improving.calls / 10
    return {"mIoU": miou, "mAcc": miou, "aAcc": miou, "IoU": [miou] * 3, "classes": CLASSES}


def run(work_dir, *, resume: bool = False):
    """Train a tiny model from the same initial weights; returns the trainer."""
    torch.manual_seed(0)
    improving.calls = 0
    trainer = make_trainer(
        work_dir,
        model=tiny_model(),
        evaluator=improving,
        iters=ITERS,
        ckpt_interval=2,
        eval_interval=2,
        keep_last=1,
    )
    if resume:
        trainer.resume(latest_checkpoint(work_dir))
        improving.calls = trainer.counters.iteration // 2
    trainer.train()
    return trainer


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory):
    """The final weights of an uninterrupted run (on one thread, as the tests: module
    fixtures come before ``one_thread``, and a thread count changes float sums)."""
    work = tmp_path_factory.mktemp("straight")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(work)
    finally:
        torch.set_num_threads(threads)
    return load_file(
        str(work / "checkpoints" / f"iter_{ITERS:06d}" / checkpoint_format.WEIGHTS_FILE)
    )


@pytest.mark.parametrize("full", CASES.values(), ids=CASES.keys())
def test_a_full_disk_stops_cleanly_and_the_run_resumes(tmp_path, monkeypatch, full, straight):
    original = getattr(full.owner, full.name)
    failing = fail_nth_call(
        original, nth=full.nth, pattern=full.pattern, when=full.when, action=_disk_full
    )
    monkeypatch.setattr(full.owner, full.name, failing)
    with pytest.raises(TrainingStopped) as stopped:
        run(tmp_path)
    monkeypatch.setattr(full.owner, full.name, original)

    previous = tmp_path / "checkpoints" / "iter_000002"
    assert str(stopped.value) == (
        f"training stopped at iteration 4: cannot write {tmp_path / full.what} "
        f"([Errno 28] No space left on device); the last good checkpoint is {previous} "
        "(continue with --resume)"
    )
    assert_no_leftovers(tmp_path)
    assert latest_checkpoint(tmp_path) == previous
    assert read_training_state(previous).counters.iteration == 2
    nrdseg.load_model(previous)
    best = json.loads((tmp_path / "best" / work_dir.EVAL_FILE).read_text())
    assert best["iter"] == (2 if full.what == "best" else 4)
    nrdseg.load_model(tmp_path / "best")

    resumed = run(tmp_path, resume=True)
    assert resumed.counters.iteration == ITERS
    final = load_file(str(tmp_path / "checkpoints" / f"iter_{ITERS:06d}" / "model.safetensors"))
    for key, value in straight.items():
        assert torch.equal(final[key], value), key
    assert json.loads((tmp_path / "best" / work_dir.EVAL_FILE).read_text())["iter"] == ITERS
    assert [e["iter"] for e in events(tmp_path, "resume")] == [2]
    assert_no_leftovers(tmp_path)


def test_the_command_line_reports_a_full_disk_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = write_tiny_config(tmp_path / "tiny.yaml", iters=ITERS)
    work = tmp_path / "run"
    train = ["train", *CPU, str(config), "--work-dir", str(work)]
    original = checkpoint_format.save_file
    failing = fail_nth_call(original, nth=1, pattern="iter_000004", when="after", action=_disk_full)
    monkeypatch.setattr(checkpoint_format, "save_file", failing)
    assert main(train) == 1
    err = capsys.readouterr().err
    assert (
        f"nrdseg train: training stopped at iteration 4: cannot write "
        f"{work / 'checkpoints' / 'iter_000004'} ([Errno 28] No space left on device); the last "
        f"good checkpoint is {work / 'checkpoints' / 'iter_000002'} (continue with --resume)"
    ) in err
    monkeypatch.setattr(checkpoint_format, "save_file", original)
    assert main([*train, "--resume"]) == 0
    assert latest_checkpoint(work).name == f"iter_{ITERS:06d}"
