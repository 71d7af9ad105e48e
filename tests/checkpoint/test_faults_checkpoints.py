"""Checkpoints from untrusted sources: nothing in them ever runs, and a checkpoint of
another architecture or class count is reported key by key, wherever it is loaded.

Model weights are safetensors (no code by construction), configs are read with
``yaml.safe_load``, and training states with ``torch.load(weights_only=True)``; the scan
below proves that no other way of unpickling exists anywhere in the code base.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import torch
import yaml

import nrdseg
from nrdseg.checkpoint.format import CONFIG_FILE
from nrdseg.checkpoint.work_dir import STATE_FILE, latest_checkpoint, read_training_state
from nrdseg.cli import main
from tests.conftest import CPU
from tests.engine_fixtures import make_trainer, one_thread, tiny_model, write_tiny_config

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

ROOT = Path(__file__).resolve().parents[2]
#: (module, function) calls that can run code stored in a file.
FORBIDDEN = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("dill", "load"),
    ("dill", "loads"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
}
#: Exported programs are code by design; only ``load_exported`` runs one, and only to
#: check a file ``nrdseg export --verify`` has just written.
PROGRAM_LOADERS = {"torch.jit.load", "torch.export.load"}
PROGRAM_LOADER_HOME = Path("src/nrdseg/deploy/export.py")


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_no_code_in_the_code_base_can_unpickle_a_file_unsafely():
    files = [
        p
        for folder in ("src", "benchmarks")
        if (ROOT / folder).is_dir()
        for p in (ROOT / folder).rglob("*.py")
    ]
    assert any(p.name == "work_dir.py" for p in files)
    torch_loads, problems = 0, []
    for path in files:
        for call, name in _calls(ast.parse(path.read_text(), filename=str(path))):
            where = f"{path.relative_to(ROOT)}:{call.lineno}: {name}"
            keywords = {k.arg: k.value for k in call.keywords}
            if name == "torch.load":
                torch_loads += 1
                safe = keywords.get("weights_only")
                if not (isinstance(safe, ast.Constant) and safe.value is True):
                    problems.append(f"{where} without weights_only=True")
            elif name in PROGRAM_LOADERS:
                if path.relative_to(ROOT) != PROGRAM_LOADER_HOME:
                    problems.append(where)
            elif tuple(name.rsplit(".", 1)) in FORBIDDEN or name in ("eval", "exec"):
                problems.append(where)
            elif name in ("np.load", "numpy.load") and "allow_pickle" in keywords:
                problems.append(f"{where} with allow_pickle")
    assert problems == []
    assert torch_loads >= 1  # format.load_weights_only, which training states and weights use


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A two-iteration run of the tiny config through the command line."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = write_tiny_config(tmp_path / "tiny.yaml", iters=2)
    work = tmp_path / "run"
    assert main(["train", *CPU, str(config), "--work-dir", str(work)]) == 0
    return config, work


class Payload:
    """Unpickling this creates a directory: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_malicious_training_state_is_refused_without_running(run_dir, tmp_path, capsys):
    config, work = run_dir
    checkpoint = latest_checkpoint(work)
    state = read_training_state(checkpoint)
    marker = tmp_path / "pwned"
    torch.save({**state.to_dict(), "iteration": Payload(marker)}, checkpoint / STATE_FILE)

    with pytest.raises(ValueError) as refused:
        read_training_state(checkpoint)
    assert str(refused.value) == (
        f"{checkpoint / STATE_FILE}: refused, not a training state of tensors and plain "
        "containers (Trying to load unsupported GLOBAL posix.mkdir whose module posix is "
        "blocked.); nothing in it was run"
    )
    args = [
        "train",
        *CPU,
        str(config),
        "--work-dir",
        str(work),
        "--resume",
        "--set",
        "train.iters=4",
    ]
    assert main(args) == 2
    assert f"nrdseg train: error: {checkpoint / STATE_FILE}: refused" in capsys.readouterr().err
    assert not marker.exists()
    nrdseg.load_model(checkpoint)  # the weights are safetensors: still usable


def test_a_training_state_of_another_kind_is_named(run_dir):
    _, work = run_dir
    checkpoint = latest_checkpoint(work)
    torch.save({"iteration": 2, "optimizer": {}}, checkpoint / STATE_FILE)
    with pytest.raises(
        ValueError,
        match=r"training_state\.pt: not an nrdseg training state; "
        r"missing consumed_batches, bad_batches, .*, rng$",
    ):
        read_training_state(checkpoint)
    (checkpoint / STATE_FILE).write_bytes(b"PK\x03\x04 a truncated zip")
    with pytest.raises(ValueError, match=r"cannot read \S+/training_state\.pt: "):
        read_training_state(checkpoint)


@pytest.mark.parametrize(
    ("overrides", "report"),
    [
        (
            [
                "model.name=bilinear_r50",
                "model.options={backbone: test_resnet, neck_channels: 32, aux_channels: 16}",
            ],
            r"does not fit this bilinear_r50 with 6 classes:\n  missing: decoder\.classifier"
            r"[\s\S]*\n  unexpected: decoder\.controller",
        ),
        (
            ["model.options.neck_channels=16"],
            r"does not fit this nrd_r50 with 6 classes:\n  shape mismatch: .*checkpoint "
            r"\(32, .*\) vs model \(16, ",
        ),
    ],
)
def test_resuming_into_another_model_is_explained_and_changes_nothing(
    run_dir, capsys, overrides, report
):
    config, work = run_dir
    saved = (work / "config.yaml").read_text()
    args = ["train", *CPU, str(config), "--work-dir", str(work), "--resume"]
    assert main([*args, *(f"--set={value}" for value in overrides)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"nrdseg train: error: {latest_checkpoint(work)} (nrd_r50, 6 classes) does not fit"
    )
    assert re.search(report, err), err
    assert (work / "config.yaml").read_text() == saved  # the run's own config is kept
    assert latest_checkpoint(work).name == "iter_000002"


def test_eval_of_a_checkpoint_for_other_classes_or_a_tampered_one(run_dir, tmp_path, capsys):
    config, _ = run_dir
    tiny_model(num_classes=3).save_pretrained(tmp_path / "three")
    assert main(["eval", *CPU, str(config), "--checkpoint", str(tmp_path / "three")]) == 2
    assert (
        f"nrdseg eval: error: {tmp_path / 'three'} predicts 3 classes but data.val of {config} "
        "has 6; use the config it was trained with"
    ) in capsys.readouterr().err

    record = yaml.safe_load((tmp_path / "three" / CONFIG_FILE).read_text())
    record["model"]["num_classes"] = 6  # the config no longer matches the weights
    (tmp_path / "three" / CONFIG_FILE).write_text(yaml.safe_dump(record))
    assert main(["eval", *CPU, str(config), "--checkpoint", str(tmp_path / "three")]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors does not fit this nrd_r50 with 6 classes:" in err
    assert "shape mismatch: decoder.classifier" in err or "shape mismatch: aux_head" in err


def test_a_trainer_refuses_a_checkpoint_of_another_model(tmp_path):
    trainer = make_trainer(tmp_path / "a", iters=2, ckpt_interval=2)
    trainer.train()
    other = make_trainer(tmp_path / "b", model=tiny_model("dlv3p_r50"))
    with pytest.raises(ValueError, match=r"does not fit this dlv3p_r50 with 3 classes:\n  missing"):
        other.resume(latest_checkpoint(tmp_path / "a"))
