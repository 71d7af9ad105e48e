"""``nrdseg train`` / ``nrdseg eval`` end to end on the synthetic dataset, in-process."""

from __future__ import annotations

import json
import runpy
import sys

import pytest
import yaml

import nrdseg
from nrdseg.checkpoint.work_dir import latest_checkpoint, read_training_state
from nrdseg.cli import main
from tests.conftest import CPU
from tests.engine_fixtures import one_thread, write_tiny_config

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # keep the test's one thread
    monkeypatch.chdir(tmp_path)
    return write_tiny_config(tmp_path / "configs" / "synthetic" / "tiny.yaml")


def test_train_writes_the_work_dir_and_eval_reads_it(config_file, tmp_path, capsys):
    work = tmp_path / "run"
    assert (
        main(["train", *CPU, str(config_file), "--work-dir", str(work), "--set", "train.seed=3"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"checkpoints in {work / 'checkpoints'}" in out and "metrics.jsonl" in out
    saved = yaml.safe_load((work / "config.yaml").read_text())
    assert saved["train"]["seed"] == 3 and saved["model"]["num_classes"] is None
    assert latest_checkpoint(work).name == "iter_000004"
    best = json.loads((work / "best" / "eval.json").read_text())
    assert best["iter"] in (2, 4) and 0.0 <= best["mIoU"] <= 1.0
    best_model = nrdseg.load_model(work / "best")
    assert best_model.num_classes == len(best_model.meta["classes"])  # from the dataset

    assert main(["eval", *CPU, str(config_file), "--checkpoint", str(work), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == str(work / "best")
    assert {"mIoU", "mAcc", "aAcc", "IoU", "trimap"} <= set(result)
    assert result["mIoU"] == pytest.approx(best["mIoU"], abs=1e-6)  # the same model and data
    classes = best_model.meta["classes"]
    assert list(result["IoU"]) == classes

    checkpoint = work / "checkpoints" / "iter_000002"
    assert main(["eval", *CPU, str(config_file), "--checkpoint", str(checkpoint), "--tta"]) == 0
    out = capsys.readouterr().out
    assert str(checkpoint) in out and classes[1] in out


def test_existing_runs_are_never_overwritten_and_resume_continues(config_file, tmp_path, capsys):
    work = tmp_path / "run"
    assert main(["train", *CPU, str(config_file), "--work-dir", str(work)]) == 0
    assert main(["train", *CPU, str(config_file), "--work-dir", str(work)]) == 2
    assert "already holds checkpoints; pass --resume" in capsys.readouterr().err
    # Leftovers of a process killed mid-write are cleared before resuming.
    (work / "checkpoints" / ".iter_000006.tmp-x1").mkdir()
    (work / "checkpoints" / ".latest.tmp-x2").write_text("iter_000006")
    args = ["train", *CPU, str(config_file), "--work-dir", str(work), "--resume"]
    assert main([*args, "--set", "train.iters=6"]) == 0
    state = read_training_state(latest_checkpoint(work))
    assert (state.counters.iteration, state.config["train"]["iters"]) == (6, 6)
    assert not [p for p in (work / "checkpoints").iterdir() if p.name.startswith(".")]
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [e["iter"] for e in lines if e["event"] == "resume"] == [4]
    assert [e["iter"] for e in lines if e["event"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_default_work_dir_and_resume_without_a_run(config_file, caplog):
    # A requeued job passes --resume even when it was killed before its first checkpoint.
    assert main(["train", *CPU, str(config_file), "--resume", "--set", "train.iters=2"]) == 0
    assert "work_dirs/synthetic/tiny has no checkpoint yet; starting from iteration 0" in (
        caplog.text
    )
    assert latest_checkpoint(config_file.parents[2] / "work_dirs" / "synthetic" / "tiny")


def test_config_errors_are_one_line(config_file, capsys):
    assert main(["train", *CPU, str(config_file), "--set", "optim.lrr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr: unknown key (did you mean lr?); valid keys: type, lr," in err
    assert main(["eval", *CPU, str(config_file), "--checkpoint", "nowhere"]) == 2
    assert "nowhere: not found (a relative path, read from the current directory" in (
        capsys.readouterr().err
    )


def test_a_diverged_run_exits_1_with_the_reason(config_file, tmp_path, capsys):
    work = tmp_path / "run"
    assert (
        main(["train", *CPU, str(config_file), "--work-dir", str(work), "--set", "optim.lr=1e30"])
        == 1
    )
    err = capsys.readouterr().err
    assert "training stopped: non-finite loss or gradient at iteration" in err


def test_python_dash_m_runs_the_cli(monkeypatch, capsys):
    # What `python -m nrdseg.cli` (and `torchrun -m nrdseg.cli`) executes, in-process.
    monkeypatch.setattr(sys, "argv", ["nrdseg", "train", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("nrdseg.cli", run_name="__main__")
    assert done.value.code == 0 and "--resume" in capsys.readouterr().out


def test_a_failed_start_leaves_no_new_work_dir(config_file, tmp_path, capsys):
    # Fails after the data and model are built (1 sample, batches of 2), before anything
    # is written: the folders this start made go again; a folder that was there stays.
    args = ["train", *CPU, str(config_file), "--set", "data.train.options.length=1"]
    new = tmp_path / "runs" / "first"
    assert main([*args, "--work-dir", str(new)]) == 2
    assert "fewer than one batch" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    assert main([*args, "--work-dir", str(existing)]) == 2
    assert existing.is_dir()


def test_pretrained_weights_out_of_reach_exit_2_with_the_choices(config_file, tmp_path, capsys):
    # A fresh user's run: the own-data template asks for pretrained: true, offline. The
    # message was right but came as a traceback with exit 1.
    import socket

    def no_network(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
        patch.setattr(socket, "create_connection", no_network)
        patch.setattr(socket, "getaddrinfo", no_network)
        args = ["train", *CPU, str(config_file), "--work-dir", str(tmp_path / "run")]
        assert main([*args, "--set", "model.pretrained=true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nrdseg train: error: could not get timm's ImageNet weights")
    assert "pretrained: false" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
