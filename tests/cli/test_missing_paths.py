"""A path that does not exist: the message names the key or the kind of file expected, and
for a relative path the folder it was read from (config paths are read from the current
directory, not from the config file's folder)."""

from __future__ import annotations

import pytest
import yaml

import nrdseg
from nrdseg.cli import main
from tests.conftest import CPU, tiny_options


def test_a_missing_relative_dataset_root_names_the_key_and_the_current_directory(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    config = {
        "model": {"name": "nrd_r50", "options": tiny_options("nrd_r50")},
        "data": {"train": {"name": "folder", "root": "data/mine", "split": None}},
        "train": {"iters": 1},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", *CPU, "run.yaml", "--work-dir", "work"]) == 2
    err = capsys.readouterr().err
    assert (
        "data.train.root: folder not found: data/mine/images (a relative path, read from "
        f"the current directory {tmp_path})" in err
    )
    assert not (tmp_path / "work").exists()


def test_a_missing_weights_file_is_named_as_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        nrdseg.create_model("bilinear_r50", num_classes=2, pretrained="nope.pth")
    message = str(error.value)
    assert message.startswith("nope.pth: weights not found (a relative path, read from")
    assert "expected a weights file (safetensors or a torch checkpoint)" in message
    with pytest.raises(FileNotFoundError, match=r"^/no/such: not found; expected a checkpoint"):
        nrdseg.load_model("/no/such")
