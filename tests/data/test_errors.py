"""Bad samples: one clear error naming the file, or skipped and counted with on_error="skip"."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from nrdseg.data import DataError, build_dataset
from tests.datasets_on_disk import (
    make_ade20k,
    make_cityscapes,
    make_folder,
    write_image,
    write_mask,
)


def test_mask_of_another_size_names_both_files_and_sizes(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a"])
    write_mask(tmp_path / "masks" / "a.png", np.zeros((5, 10)))
    dataset = build_dataset("folder", root=tmp_path, num_classes=3)
    with pytest.raises(
        DataError, match=r"mask .*masks/a\.png is 5x10 \(HxW\) but image .*images/a\.png is 6x10"
    ):
        dataset[0]


def test_label_values_beyond_the_classes_are_named(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, per_city=1)
    bad = tmp_path / "gtFine/train/bremen/bremen_000000_000019_gtFine_labelTrainIds.png"
    values = np.zeros((6, 10), dtype=np.uint8)
    values[0, :3] = [19, 20, 200]
    write_mask(bad, values)
    dataset = build_dataset("cityscapes", root=tmp_path)
    dataset[0]
    with pytest.raises(
        DataError,
        match=r"bremen_000000_000019_gtFine_labelTrainIds\.png: mask values 19\.\.20, 200 .*expected only 0\.\.18, 255",
    ):
        dataset[1]


def test_values_are_checked_after_the_id_mapping(tmp_path: Path) -> None:
    masks = make_ade20k(tmp_path, count=1)
    masks[0][0, 0] = 151  # would be class 150 after "minus one": there are only 150 classes
    write_mask(
        next((tmp_path / "ADEChallengeData2016/annotations/training").glob("*.png")), masks[0]
    )
    with pytest.raises(DataError, match=r"mask values 151 .*expected only 0\.\.150, 255"):
        build_dataset("ade20k", root=tmp_path)[0]


def test_missing_mask_is_an_error_or_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "masks" / "b.png").unlink()
    with pytest.raises(
        DataError, match=r"image .*images/b\.png has no mask: expected .*masks/b\.png"
    ):
        build_dataset("folder", root=tmp_path, num_classes=3)
    with caplog.at_level(logging.WARNING):
        dataset = build_dataset("folder", root=tmp_path, num_classes=3, on_error="skip")
    assert len(dataset) == 2 and dataset.skipped == 1
    assert "b.png has no mask" in caplog.text


def test_skip_replaces_bad_samples_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_folder(tmp_path, ["a", "b", "c", "d"])
    (tmp_path / "images" / "b.png").write_bytes(b"garbage")
    write_image(tmp_path / "images" / "c.png", seed=0, size=(3, 3))
    dataset = build_dataset("folder", root=tmp_path, num_classes=3, on_error="skip")
    with caplog.at_level(logging.WARNING):
        paths = [dataset[i]["path"] for i in range(len(dataset))]
    assert [Path(p).stem for p in paths] == ["a", "d", "d", "d"]
    assert dataset.skipped == 2
    assert "b.png: cannot read image" in caplog.text and "3x3" in caplog.text
    dataset[1]
    assert dataset.skipped == 2  # a known bad sample is not read or counted again


def test_skip_with_nothing_good_left_raises(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a"])
    write_mask(tmp_path / "masks" / "a.png", np.full((6, 10), 9))
    dataset = build_dataset("folder", root=tmp_path, num_classes=3, on_error="skip")
    with pytest.raises(DataError, match="all 1 samples of this FolderDataset are bad"):
        dataset[0]


def test_on_error_is_checked(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a"])
    with pytest.raises(ValueError, match=r"on_error must be one of \('raise', 'skip'\)"):
        build_dataset("folder", root=tmp_path, num_classes=3, on_error="ignore")
