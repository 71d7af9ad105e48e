"""What a training run leaves for its user: threads, timing, progress lines, file modes."""

from __future__ import annotations

import io
import logging
import os
import stat
import time

import pytest
import torch

from nrdseg.checkpoint.format import save_pretrained
from nrdseg.checkpoint.work_dir import write_best, write_checkpoint
from nrdseg.cli import main
from nrdseg.config.run import OptimConfig, TrainConfig, load_config, save_config
from nrdseg.engine import build
from nrdseg.engine.trainer import Trainer
from nrdseg.utils.atomic import atomic_write_bytes, current_umask
from nrdseg.utils.distributed import DistInfo
from nrdseg.utils.openmp import openmp_runtime
from nrdseg.utils.progress import PlainProgress, progress_bar
from tests import engine_fixtures as fx
from tests.conftest import CPU
from tests.engine_fixtures import one_thread

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


# -- CPU threads ---------------------------------------------------------------------------
@pytest.fixture
def two_idle_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))


def test_a_data_worker_does_not_take_a_torch_thread(two_idle_cores, caplog):
    caplog.set_level(logging.INFO, logger="nrdseg.train")
    assert build.share_cpu_threads(workers=1, info=DistInfo()) == 2
    assert torch.get_num_threads() == 2
    assert "2 torch thread(s) per process on 2 core(s), 1 process(es), 1 data worker" in caplog.text
    assert build.share_cpu_threads(workers=0, info=DistInfo(world_size=2)) == 1


def test_omp_num_threads_wins_and_a_busy_machine_is_named(two_idle_cores, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="nrdseg.train")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert build.share_cpu_threads(workers=2, info=DistInfo()) == 1
    assert "(OMP_NUM_THREADS)" in caplog.text
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    build.share_cpu_threads(workers=0, info=DistInfo())
    assert "load average 5.0 on 2 core(s)" in caplog.text and "OMP_NUM_THREADS=1" in caplog.text
    assert "spin while they wait (OMP_WAIT_POLICY not set)" in caplog.text
    assert "start with OMP_WAIT_POLICY=PASSIVE" in caplog.text


def test_a_busy_machine_with_passive_openmp_threads_gets_no_warning(
    two_idle_cores, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="nrdseg.train")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    build.share_cpu_threads(workers=0, info=DistInfo())
    assert "load average" not in caplog.text
    runtime = openmp_runtime() or "runtime unknown"  # GNU libgomp in torch's Linux wheels
    assert f"OpenMP {runtime}, OMP_WAIT_POLICY PASSIVE" in caplog.text


# -- timing --------------------------------------------------------------------------------
def test_time_per_iter_and_eta_leave_out_evaluation(tmp_path, monkeypatch):
    """The evaluator advances the trainer's clock by an hour; no iteration may carry it
    (a fake clock, so a busy machine cannot make the test flaky)."""
    import nrdseg.engine.log_window as log_window_module

    real = time.perf_counter
    skipped = [0.0]
    monkeypatch.setattr(log_window_module.time, "perf_counter", lambda: real() + skipped[0])
    pause = 3600.0

    def slow_evaluator(model):
        skipped[0] += pause
        return {"mIoU": 0.5, "mAcc": 0.5, "aAcc": 0.5, "IoU": [0.5, 0.5, 0.5]}

    trainer = fx.make_trainer(
        tmp_path, evaluator=slow_evaluator, iters=4, eval_interval=2, ckpt_interval=100
    )
    trainer.train()
    logged = fx.events(tmp_path, "train")
    assert [e["iter"] for e in logged] == [1, 2, 3, 4]
    assert max(e["time_per_iter"] for e in logged) < pause / 100  # iteration 3 follows an eval
    assert logged[2]["eta_min"] == pytest.approx(logged[2]["time_per_iter"] / 60)


def test_data_time_is_the_wait_for_batches(tmp_path, monkeypatch):
    """Each sample costs 100 s on a fake clock: ``data_time`` carries it, within the
    iteration's time (batch 2: 200 s per iteration)."""
    import nrdseg.engine.log_window as log_window_module

    real = time.perf_counter
    loading = [0.0]
    monkeypatch.setattr(log_window_module.time, "perf_counter", lambda: real() + loading[0])

    class SlowScenes(fx.Scenes):
        def __getitem__(self, index: int) -> dict:
            loading[0] += 100.0
            return super().__getitem__(index)

    fx.make_trainer(tmp_path, dataset=SlowScenes(), iters=3).train()
    for event in fx.events(tmp_path, "train"):
        assert 200.0 <= event["data_time"] <= event["time_per_iter"] < 201.0


# -- progress ------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_redirected_output_gets_plain_lines_and_a_terminal_a_bar():
    stream = io.StringIO()
    bar = progress_bar(total=5, desc="train", stream=stream)
    assert isinstance(bar, PlainProgress)
    bar.interval = 0.0  # a line per update
    for _ in range(5):
        bar.update(1)
        bar.set_postfix(loss="0.5000")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 6  # 5 updates + the closing line
    assert lines[-1].startswith("train 5/5 (100%) ") and lines[-1].endswith("loss=0.5000")
    assert not isinstance(progress_bar(total=5, stream=_Terminal()), PlainProgress)
    quiet = io.StringIO()
    for _ in progress_bar(range(3), enabled=False, stream=quiet):
        pass
    assert quiet.getvalue() == ""


def test_plain_lines_come_once_per_interval():
    stream = io.StringIO()
    with PlainProgress(range(1000), desc="evaluate", stream=stream) as bar:
        assert sum(1 for _ in bar) == 1000
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[0]]
    assert stream.getvalue().startswith("evaluate 1000/1000 (100%)")


def test_trainer_writes_no_bar_fragments_to_a_redirected_log(tmp_path, capsys):
    trainer = Trainer(
        model=fx.tiny_model(),
        train_dataset=fx.Scenes(),
        work_dir=tmp_path,
        train_cfg=TrainConfig(iters=3, log_interval=1, ckpt_interval=100, eval_interval=0),
        optim_cfg=OptimConfig(lr=0.05, warmup_iters=0, min_lr=0.0),
        progress=True,
    )
    trainer.train()
    captured = capsys.readouterr()
    assert "\r" not in captured.err + captured.out
    assert "train 3/3 (100%)" in captured.err
    assert [line.split("  ")[0] for line in captured.out.splitlines()] == [
        "train iter 1",
        "train iter 2",
        "train iter 3",
        "checkpoint iter 3",
    ]


def test_cli_no_progress_keeps_the_log_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = fx.write_tiny_config(tmp_path / "tiny.yaml", iters=2)
    work = tmp_path / "run"
    assert main(["train", *CPU, str(config), "--work-dir", str(work), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "train iter 2" in captured.out and "eval iter 2" in captured.out
    assert "train 2/2" not in captured.err and "evaluate" not in captured.err


# -- file modes ----------------------------------------------------------------------------
@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_checkpoints_best_and_config_follow_the_umask(tmp_path, umask):
    assert current_umask() == umask
    files, dirs = 0o666 & ~umask, 0o777 & ~umask
    model = fx.tiny_model()
    written = [save_pretrained(model, tmp_path / "ckpt")]
    written.append(write_checkpoint(tmp_path, model=model, state=fx.training_state(2)))
    written.append(write_best(tmp_path, model=model, result={"mIoU": 0.5}))
    config = load_config(fx.write_tiny_config(tmp_path / "configs" / "tiny.yaml"))
    save_config(config, tmp_path / "config.yaml")
    atomic_write_bytes(tmp_path / "out" / "label.png", b"png")
    for directory in written:
        assert _mode(directory) == dirs, directory
        for path in directory.iterdir():
            assert _mode(path) == files, path
    for path in (tmp_path / "checkpoints" / "latest", tmp_path / "config.yaml"):
        assert _mode(path) == files, path
    assert _mode(tmp_path / "out" / "label.png") == files
    assert _mode(tmp_path / "checkpoints") == dirs
