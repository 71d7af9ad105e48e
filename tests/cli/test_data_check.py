"""``nrdseg data check``: label statistics, findings with their fix, --json, --max-samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nrdseg.cli import main
from tests.datasets_on_disk import make_folder, write_image, write_mask


def _zero_255_folder(root: Path, count: int = 4) -> None:
    """The usual 0/255 export of a 2-class set: object pixels are 255."""
    for i in range(count):
        mask = np.zeros((6, 10), np.uint8)
        mask[1:4, 2:6] = 255
        write_image(root / "images" / f"s{i}.png", i)
        write_mask(root / "masks" / f"s{i}.png", mask)


def test_zero_255_masks_fail_the_check_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Failure 1 of issue 16: this check said "4 samples, 0 bad, 2 classes" and exit 0."""
    _zero_255_folder(tmp_path)
    args = ["data", "check", "folder", "--set", f"root={tmp_path}", "--set", "num_classes=2"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "error: the masks hold only 0 and 255 for this 2-class set" in out
    assert "--set 'label_map={255: 1}'" in out
    assert "class_1" in out and "0.00%" in out  # the table shows class 1 empty
    assert main([*args, "--set", "label_map={255: 1}"]) == 0
    assert "0 label finding(s)" in capsys.readouterr().out


def test_json_output_and_sampling(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_folder(tmp_path, [f"s{i}" for i in range(5)], num_classes=3)
    args = ["data", "check", "folder", "--set", f"root={tmp_path}", "--set", "num_classes=3"]
    assert main([*args, "--json", "--max-samples", "2"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["dataset"] == "folder" and record["sampled"] is True
    assert record["samples"] == 2 and record["total_samples"] == 5
    assert [c["images"] for c in record["classes"]] == [2, 2, 2]
    assert sum(c["fraction"] for c in record["classes"]) == pytest.approx(1.0)
    assert main([*args, "--max-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "over an evenly spaced sample of 2 of 5 samples" in out
    assert "folder: 5 samples (2 read), 0 bad" in out


def test_list_names_every_option_with_transforms(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "list"]) == 0
    folder = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("folder")
    )
    for option in ("reduce_zero_label=False", "label_map=None", "transforms=None", "on_error="):
        assert option in folder


def test_one_class_masks_fail_the_check_with_the_binary_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 21, failure 1: with num_classes=1 this check reported nothing and exit 0."""
    _zero_255_folder(tmp_path)
    args = ["data", "check", "folder", "--set", f"root={tmp_path}"]
    assert main([*args, "--set", "num_classes=1"]) == 1
    out = capsys.readouterr().out
    assert "error: this set has 1 class ('class_0') and its masks hold only 0 and 255" in out
    assert "label_map={255: 1}" in out and "model.num_classes: 1" in out
    assert main([*args, "--set", "num_classes=2", "--set", "label_map={255: 1}"]) == 0
