"""The shared runner of the demo and the decoder study: config, skipping, resuming."""

from __future__ import annotations

import json
import shlex

import pytest

import nrdseg
from nrdseg.analysis import experiments
from nrdseg.analysis.demo import QUICK
from nrdseg.analysis.experiments import (
    CAMVID,
    Budget,
    Run,
    execute,
    run_command,
    run_config,
    run_dir,
    with_changes,
    with_root,
)
from nrdseg.checkpoint.work_dir import read_best_result
from nrdseg.cli import build_parser, main
from nrdseg.cli.options import parse_assignments
from nrdseg.config.run import config_to_dict, load_config
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
    other = BUDGET.with_overrides(**{"train.iters": 6})
    with pytest.raises(
        ValueError, match=r"other settings .*\(then -> now\):\n  train\.iters: 4 -> 6\n"
    ):
        execute(RUN, other, out=tmp_path, progress=False, device="cpu")


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    budget = BUDGET.with_overrides(**{"train.ckpt_interval": 2})
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


def config_of_command(command: str):
    """The config ``nrdseg train`` resolves from ``command``, read as the CLI reads it."""
    argv = shlex.split(command)[1:]
    args = build_parser(argv).parse_args(argv)
    return load_config(args.config, parse_assignments(args.set))


@pytest.mark.parametrize(
    ("run", "budget"),
    [
        (Run(label="ifa", model="ifa_r50", seed=2), with_root(CAMVID, "/data/camvid")),
        (
            Run(label="nrd_template", model="nrd_r50", options={"mlp_bias_init": "template"}),
            with_changes(CAMVID, iters=50, image_size=96),
        ),
        (Run(label="bilinear", model="bilinear_r50", seed=1), with_changes(BUDGET, iters=3)),
        (RUN, Budget()),
    ],
    ids=["camvid-ifa", "camvid-template-changed", "quick-bilinear", "synthetic-nrd"],
)
def test_a_study_run_is_the_nrdseg_train_command_it_prints(run, budget):
    """Issue 23: every study run can be rerun with ``nrdseg train CONFIG --set ...``."""
    command = run_command(run, budget, work_dir="w")
    assert command.startswith(f"nrdseg train {budget.config} ")
    assert config_to_dict(config_of_command(command)) == config_to_dict(run_config(run, budget))
    config = run_config(run, budget)
    assert config.model.name == run.model and config.train.seed == run.seed
    assert config.model.options.items() >= run.options.items()


def test_the_reference_row_is_its_config_file_as_it_is():
    assert run_command(Run(label="nrd", model="nrd_r50"), Budget()) == (
        "nrdseg train studies/synthetic.yaml"
    )


def test_a_quick_run_and_its_command_train_the_same_model(tmp_path):
    """Both ways end in the same resolved config and the same score (one CPU thread)."""
    record = execute(RUN, BUDGET, out=tmp_path / "study", progress=False, device="cpu")
    assert record["command"] == run_command(RUN, BUDGET, work_dir=run_dir(tmp_path / "study", RUN))
    again = tmp_path / "again"
    argv = shlex.split(run_command(RUN, BUDGET, work_dir=again))[1:]
    assert main([*argv, "--no-progress", "--device", "cpu"]) == 0
    study_dir = run_dir(tmp_path / "study", RUN)
    assert (again / "config.yaml").read_text() == (study_dir / "config.yaml").read_text()
    assert read_best_result(again)["mIoU"] == record["mIoU"]


def test_a_work_dir_left_by_a_command_with_other_settings_is_refused(tmp_path, monkeypatch):
    """The printed command leaves a work dir but no result.json; another study with the
    same --out (the quick CamVid one, say) must not take its scores as its own."""
    argv = shlex.split(run_command(RUN, BUDGET, work_dir=run_dir(tmp_path, RUN)))[1:]
    assert main([*argv, "--no-progress", "--device", "cpu"]) == 0
    monkeypatch.setattr(experiments, "train_from_config", lambda *a, **k: pytest.fail("trained"))
    other = BUDGET.with_overrides(**{"data.train.options.length": 12})
    with pytest.raises(
        ValueError, match=r"config\.yaml was run with other settings (?s:.*)length: 16 -> 12"
    ):
        execute(RUN, other, out=tmp_path, progress=False, device="cpu")
    assert not (run_dir(tmp_path, RUN) / experiments.RESULT_FILE).exists()
    record = execute(RUN, BUDGET, out=tmp_path, progress=False, device="cpu")  # the same run
    assert record["command"] == run_command(RUN, BUDGET, work_dir=run_dir(tmp_path, RUN))
