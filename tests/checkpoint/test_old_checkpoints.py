"""Checkpoints written before the structure change (nrdseg 0.1.0, commit 5c5d58e) still work.

``tests/fixtures/checkpoint_0_1_0`` was written by that code (see its MADE_BY.txt): a
work dir with one training checkpoint, and the logits the old code computed with it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

import nrdseg
from nrdseg.checkpoint.resolve import checkpoint_directory
from nrdseg.checkpoint.work_dir import TrainingState, latest_checkpoint, read_checkpoint
from nrdseg.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_0_1_0"
WORK_DIR = FIXTURE / "work_dir"


def test_the_old_work_dir_resolves_to_its_latest_checkpoint():
    assert checkpoint_directory(WORK_DIR) == WORK_DIR / "checkpoints" / "iter_000002"


def test_an_old_checkpoint_loads_and_gives_the_old_logits():
    model = nrdseg.load_model(WORK_DIR)
    expected = load_file(str(FIXTURE / "expected_logits.safetensors"))
    with torch.no_grad():
        logits = model(expected["images"])
    stored = load_file(str(latest_checkpoint(WORK_DIR) / "model.safetensors"))
    assert model.state_dict().keys() == stored.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items())
    # the same weights and the same function: equal up to float rounding on another CPU
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-6)


def test_an_old_training_state_reads_as_the_typed_state():
    checkpoint = read_checkpoint(latest_checkpoint(WORK_DIR))
    state = checkpoint.state
    assert isinstance(state, TrainingState)
    assert (
        state.counters.iteration,
        state.counters.consumed_batches,
        state.counters.bad_batches,
    ) == (2, 2, 0)
    assert state.optimizer["state"] and len(state.rng) == 1
    assert state.config["model"]["options"]["backbone"] == "test_efficientnet"
    assert checkpoint.record["model"]["name"] == "nrd_r50"
    assert set(checkpoint.weights) == set(nrdseg.load_model(WORK_DIR).state_dict())


def test_an_old_work_dir_resumes_with_today_s_trainer(tmp_path, capsys):
    work = tmp_path / "work_dir"
    shutil.copytree(WORK_DIR, work)
    config = work / "config.yaml"
    options = ["--resume", "--no-progress", "--device", "cpu", "--set", "train.iters=4"]
    code = main(["train", str(config), "--work-dir", str(work), *options])
    assert code == 0, capsys.readouterr().err
    state = read_checkpoint(latest_checkpoint(work)).state
    assert state.counters.iteration == 4 and state.counters.consumed_batches == 4
    events = (work / "metrics.jsonl").read_text()
    assert '"event": "resume"' in events and '"iter": 2' in events


def test_an_old_work_dir_resumed_with_another_batch_size_counts_its_batches_in_its_own(
    tmp_path, capsys
):
    # 0.1.0 counted 2 batches of 2 (of 8 samples); resumed with batches of 4, the next
    # batch is samples 4..7 of epoch 0, not (2 batches x 4 =) the first of epoch 1.
    work = tmp_path / "work_dir"
    shutil.copytree(WORK_DIR, work)
    config = work / "config.yaml"
    options = ["--resume", "--no-progress", "--device", "cpu"]
    options += ["--set", "train.iters=3", "--set", "loader.batch_size=4"]
    code = main(["train", str(config), "--work-dir", str(work), *options])
    assert code == 0, capsys.readouterr().err
    state = read_checkpoint(latest_checkpoint(work)).state
    assert state.counters.iteration == 3
    assert vars(state.counters.data_position) == {
        "epoch": 0,
        "offset": 8,
        "dataset_size": 8,
        "seed": 0,
    }
