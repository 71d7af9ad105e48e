"""CamVid in the SegNet layout: a tiny fixture always, the real copy in ../shared when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nrdseg.data import DataError, build_dataset, list_datasets
from nrdseg.data.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from tests.datasets_on_disk import SIZE, make_camvid, write_image

REAL_CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"


def test_camvid_splits_ids_and_unlabelled_ignored(tmp_path: Path) -> None:
    masks = make_camvid(tmp_path)
    assert "camvid" in list_datasets()
    for split, expected in (("train", 3), ("val", 2), ("test", 2), ("trainval", 5)):
        assert len(build_dataset("camvid", root=tmp_path, split=split)) == expected
    dataset = build_dataset("camvid", root=tmp_path, split="test")
    assert dataset.classes == CAMVID_CLASSES and dataset.num_classes == 11
    assert dataset.palette == CAMVID_PALETTE
    for sample, raw in zip(dataset, masks["test"], strict=True):
        assert sample["image"].shape == (3, *SIZE)
        expected = np.where(raw == 11, 255, raw)
        np.testing.assert_array_equal(sample["label"].numpy(), expected)
    assert sample["path"].endswith(".png") and "/test/" in sample["path"]


def test_camvid_accepts_the_folder_above(tmp_path: Path) -> None:
    make_camvid(tmp_path / "CamVid")
    assert len(build_dataset("camvid", root=tmp_path, split="train")) == 3


def test_camvid_errors_name_the_split_and_the_layout(tmp_path: Path) -> None:
    make_camvid(tmp_path, counts={"train": 2})
    with pytest.raises(
        ValueError, match=r"CamVid split must be one of .*'trainval'.*got 'testing'"
    ):
        build_dataset("camvid", root=tmp_path, split="testing")
    with pytest.raises(
        FileNotFoundError, match=r"(?s)folder not found: .*test\nexpected layout:.*test}annot"
    ):
        build_dataset("camvid", root=tmp_path, split="test")
    write_image(tmp_path / "train" / "0001TP_999999.png", 99)  # a frame without its mask
    with pytest.raises(DataError, match=r"has no mask: expected .*trainannot/0001TP_999999.png"):
        build_dataset("camvid", root=tmp_path, split="train")


def test_camvid_mask_values_past_11_are_refused(tmp_path: Path) -> None:
    make_camvid(tmp_path, counts={"train": 1})
    mask = next((tmp_path / "trainannot").glob("*.png"))
    from PIL import Image

    Image.fromarray(np.full(SIZE, 12, dtype=np.uint8)).save(mask)
    with pytest.raises(DataError, match=r"mask values 12 are not labels of this 11-class"):
        build_dataset("camvid", root=tmp_path, split="train")[0]


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason="no CamVid copy in ../shared/data")
def test_real_camvid_split_sizes_and_class_ids() -> None:
    sizes = {"train": 367, "val": 101, "test": 233, "trainval": 468}
    for split, count in sizes.items():
        assert len(build_dataset("camvid", root=REAL_CAMVID, split=split)) == count
    test = build_dataset("camvid", root=REAL_CAMVID, split="test")
    seen = set()
    for index in range(0, len(test), 29):
        image, label, _ = test.load(index)
        assert tuple(image.shape) == (3, 360, 480)
        seen |= set(np.unique(label.numpy()).tolist())
    assert seen <= set(range(11)) | {255} and {0, 1, 3, 8, 255} <= seen
