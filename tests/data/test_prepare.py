"""``nrdseg data prepare cityscapes``, checked against the official labels table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from nrdseg.cli import main
from nrdseg.data import build_dataset
from tests.datasets_on_disk import make_cityscapes


def _official(label_ids: np.ndarray) -> np.ndarray:
    train_ids = {i: label.trainId for i, label in id2label.items()}
    table = np.array([train_ids.get(i, 255) for i in range(256)])
    return np.where((table < 0) | (table == 255), 255, table)[label_ids]


def test_prepare_converts_label_ids_with_the_official_table(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    masks = make_cityscapes(tmp_path, label_ids=True)
    assert main(["data", "prepare", "cityscapes", str(tmp_path), "--no-progress"]) == 0
    assert "converted 4 file(s), kept 0 existing" in capsys.readouterr().out
    written = sorted((tmp_path / "gtFine").rglob("*_gtFine_labelTrainIds.png"))
    assert len(written) == 4
    assert not [p for p in (tmp_path / "gtFine").rglob("*") if p.name.startswith(".")]
    dataset = build_dataset("cityscapes", root=tmp_path)
    for i, raw in enumerate(masks):
        assert np.array_equal(dataset[i]["label"].numpy(), _official(raw))
    assert np.array_equal(np.array(Image.open(written[0])), _official(masks[0]))


def test_prepare_skips_existing_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_cityscapes(tmp_path, label_ids=True)
    main(["data", "prepare", "cityscapes", str(tmp_path), "--no-progress"])
    kept = sorted((tmp_path / "gtFine").rglob("*_labelTrainIds.png"))[0]
    kept.write_bytes(b"left alone")
    assert main(["data", "prepare", "cityscapes", str(tmp_path), "--no-progress"]) == 0
    assert "converted 0 file(s), kept 4 existing" in capsys.readouterr().out
    assert kept.read_bytes() == b"left alone"


def test_prepare_without_label_ids_explains(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "prepare", "cityscapes", str(tmp_path)]) == 2
    assert "no *_gtFine_labelIds.png files under" in capsys.readouterr().err


def test_check_reports_bad_samples(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_cityscapes(tmp_path)
    bad = sorted((tmp_path / "leftImg8bit").rglob("*.png"))[1]
    bad.write_bytes(b"broken")
    assert main(["data", "check", "cityscapes", "--set", f"root={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert f"bad sample 1: {bad}: cannot read image" in out
    assert "cityscapes: 4 samples, 1 bad, 19 classes" in out


def test_list_shows_datasets_and_options(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "pascal_context_59" in out and "num_classes=None" in out
