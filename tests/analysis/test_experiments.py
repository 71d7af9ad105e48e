"""The shared runner of the demo and the decoder study: config, skipping, resuming."""

from __future__ import annotations

import dataclasses
import json

import pytest

import nrdseg
from nrdseg.analysis import experiments
from nrdseg.analysis.demo import QUICK
from nrdseg.analysis.experiments import Budget, Run, execute, run_config, run_dir
from nrdseg.engine.trainer import Trainer
from tests.engine_fixtures import one_thread

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

BUDGET = QUICK.budget
RUN = Run(label="nrd", model="nrd_r50", seed=1)


@pytest.fixture(autouse=True)
def _keep_one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # train_from_config would take every core


def test_config_shares_the_encoder_and_scales_the_head_widths():
    config = run_config(Run(label="dlv3p", model="dlv3p_r50"), Budget())
    options = config.model.options
    assert options["backbone"] == "resnet18d" and options["neck_channels"] == 128
    assert options["channels"] == 128  # DLv3+ width follows the neck
    assert "controller_channels" not in options
    assert run_config(RUN, Budget()).model.options["controller_channels"] == 128
    assert config.data.val.options["seed"] != config.data.train.options["seed"]
    assert config.train.eval_interval == 0 and config.optim.type == "adamw"


def test_a_finished_run_is_read_back_not_trained_again(tmp_path, monkeypatch):
    first = execute(RUN, BUDGET, out=tmp_path, progress=False, device="cpu")
    assert first["label"] == "nrd" and first["seed"] == 1 and 0 <= first["mIoU"] <= 1
    assert set(first["trimap"]) == {"1", "3", "5"} and first["train_seconds"] > 0
    assert first["warning"].startswith("small validation set: 8 image(s)")  # QUICK's 8
    model = nrdseg.load_model(run_dir(tmp_path, RUN))
    assert model.config["name"] == "nrd_r50" and model.meta["classes"][3] == "line"

    monkeypatch.setattr(experiments, "train_from_config", lambda *a, **k: pytest.fail("trained"))
    assert execute(RUN, BUDGET, out=tmp_path, progress=False, device="cpu") == first
    other = dataclasses.replace(BUDGET, iters=6)
    with pytest.raises(
        ValueError, match=r"other settings .*\(then -> now\):\n  train\.iters: 4 -> 6\n"
    ):
        execute(RUN, other, out=tmp_path, progress=False, device="cpu")


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    budget = dataclasses.replace(BUDGET, ckpt_interval=2)
    original = Trainer.train

    def killed_after_two(self, *, until=None):
        original(self, until=2)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        execute(RUN, budget, out=tmp_path, progress=False, device="cpu")
    assert not (run_dir(tmp_path, RUN) / experiments.RESULT_FILE).exists()
    monkeypatch.setattr(Trainer, "train", original)
    record = execute(RUN, budget, out=tmp_path, progress=False, device="cpu")
    events = [
        json.loads(line)
        for line in (run_dir(tmp_path, RUN) / "metrics.jsonl").read_text().splitlines()
    ]
    assert {"event": "resume", "iter": 2} in events
    assert record["config"]["train"]["iters"] == 4 and record["train_seconds"] > 0
