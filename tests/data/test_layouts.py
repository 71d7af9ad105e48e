"""Each on-disk layout: discovery, class metadata, label-id mapping and ignore handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cityscapesscripts.helpers.labels import trainId2label

from nrdseg.data import DataError, build_dataset, list_datasets
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD
from tests.datasets_on_disk import (
    SIZE,
    make_ade20k,
    make_cityscapes,
    make_folder,
    make_pascal_context,
    write_image,
    write_mask,
)


def _check_sample(sample: dict, num_classes: int) -> None:
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, *SIZE)
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == SIZE
    valid = (sample["label"] < num_classes) | (sample["label"] == 255)
    assert bool(valid.all()) and (sample["label"] >= 0).all()


def test_registry_names_and_errors(tmp_path: Path) -> None:
    assert list_datasets() == [
        "ade20k", "camvid", "cityscapes", "folder", "pascal_context", "pascal_context_59",
        "synthetic",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown dataset 'kitti'.*cityscapes"):
        build_dataset("kitti")
    with pytest.raises(TypeError, match=r"\['roots'\].*valid:.*'root'.*'split'"):
        build_dataset("cityscapes", roots=tmp_path)
    with pytest.raises(TypeError, match=r"needs \['root'\]"):
        build_dataset("ade20k")


def test_cityscapes_train_ids_and_palette(tmp_path: Path) -> None:
    masks = make_cityscapes(tmp_path)
    dataset = build_dataset("cityscapes", root=tmp_path, split="train")
    assert len(dataset) == 4 and dataset.num_classes == 19 and dataset.ignore_index == 255
    for train_id, (name, colour) in enumerate(zip(dataset.classes, dataset.palette, strict=True)):
        assert name == trainId2label[train_id].name
        assert tuple(colour) == trainId2label[train_id].color
    for i, expected in enumerate(masks):
        sample = dataset[i]
        _check_sample(sample, 19)
        assert np.array_equal(sample["label"].numpy(), expected)
        assert sample["path"].endswith("_leftImg8bit.png")


def test_cityscapes_without_train_ids_says_how_to_convert(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, label_ids=True)
    with pytest.raises(DataError, match=r"nrdseg data prepare cityscapes"):
        build_dataset("cityscapes", root=tmp_path)


def test_transforms_none_gives_full_normalized_image(tmp_path: Path) -> None:
    stems = ["a"]
    make_folder(tmp_path, stems)
    pixels = write_image(tmp_path / "images" / "a.png", seed=5)
    sample = build_dataset("folder", root=tmp_path, num_classes=3)[0]
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    expected = (torch.from_numpy(pixels).float() / 255 - mean) / std
    torch.testing.assert_close(sample["image"], expected.permute(2, 0, 1))


@pytest.mark.parametrize("nested", [True, False])
def test_ade20k_reduces_zero_label(tmp_path: Path, nested: bool) -> None:
    masks = make_ade20k(tmp_path, split="validation")
    root = tmp_path if nested else tmp_path / "ADEChallengeData2016"
    dataset = build_dataset("ade20k", root=root, split="val")
    assert dataset.num_classes == 150 and dataset.classes[0] == "wall"
    assert dataset.classes[-1] == "flag" and dataset.palette[0] == [120, 120, 120]
    sample = dataset[0]
    _check_sample(sample, 150)
    raw = torch.from_numpy(masks[0]).long()
    assert torch.equal(sample["label"], torch.where(raw == 0, 255, raw - 1))
    with pytest.raises(ValueError, match="ADE20K split"):
        build_dataset("ade20k", root=root, split="test")


def test_pascal_context_60_and_59(tmp_path: Path) -> None:
    masks = make_pascal_context(tmp_path, split="val")
    full = build_dataset("pascal_context", root=tmp_path, split="val")
    reduced = build_dataset("pascal_context_59", root=tmp_path / "VOCdevkit", split="val")
    assert full.num_classes == 60 and full.classes[0] == "background"
    assert reduced.num_classes == 59 and reduced.classes == full.classes[1:]
    assert reduced.palette == full.palette[1:]
    raw = torch.from_numpy(masks[1]).long()
    assert torch.equal(full[1]["label"], raw)
    assert torch.equal(reduced[1]["label"], torch.where(raw == 0, 255, raw - 1))
    _check_sample(reduced[1], 59)


def test_pascal_context_missing_split_file_names_it(tmp_path: Path) -> None:
    make_pascal_context(tmp_path, split="train")
    with pytest.raises(
        FileNotFoundError, match=r"SegmentationContext/val\.txt.*\n.*expected layout"
    ):
        build_dataset("pascal_context", root=tmp_path, split="val")


def test_folder_with_classes_yaml_split_and_subfolders(tmp_path: Path) -> None:
    masks = make_folder(tmp_path, ["x/one", "x/two", "three"])
    (tmp_path / "classes.yaml").write_text(
        yaml.safe_dump(
            {"classes": ["sky", "sea", "sand"], "palette": [[0, 0, 255], [0, 9, 99], [9, 9, 0]]}
        )
    )
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("x/two\nthree\n")
    dataset = build_dataset("folder", root=tmp_path, split="val")
    assert dataset.classes == ["sky", "sea", "sand"] and dataset.palette[1] == [0, 9, 99]
    assert len(dataset) == 2
    assert dataset[0]["path"].endswith("x/two.png")
    assert np.array_equal(dataset[0]["label"].numpy(), masks["x/two"])
    everything = build_dataset("folder", root=tmp_path)
    assert len(everything) == 3


def test_folder_split_file_path_and_generated_classes(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a", "b"], num_classes=4)
    listing = tmp_path / "mine.txt"
    listing.write_text("b\n")
    dataset = build_dataset("folder", root=tmp_path, split_file=listing, num_classes=4)
    assert len(dataset) == 1 and dataset.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert len({tuple(c) for c in dataset.palette}) == 4
    listing.write_text("b\nzebra\n")
    with pytest.raises(DataError, match=r"mine\.txt lists 1 stem.*zebra"):
        build_dataset("folder", root=tmp_path, split_file=listing, num_classes=4)


def test_folder_classes_are_required_and_checked(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a"])
    with pytest.raises(ValueError, match=r"no classes\.yaml.*num_classes=N"):
        build_dataset("folder", root=tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [a, b]\npalette: [[1, 2, 3]]\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: 'palette' has 1 colours for 2 classes"):
        build_dataset("folder", root=tmp_path, classes_file=bad)
    bad.write_text("names: [a]\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: expected a mapping with a 'classes' list"):
        build_dataset("folder", root=tmp_path, classes_file=bad)
    bad.write_text("classes: [a, b]\n")
    with pytest.raises(ValueError, match=r"num_classes=3 but .*bad\.yaml lists 2"):
        build_dataset("folder", root=tmp_path, classes_file=bad, num_classes=3)


def test_folder_duplicate_stems_are_ambiguous(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a"])
    write_image(tmp_path / "images" / "a.jpg", seed=1)
    with pytest.raises(DataError, match=r"two images share the stem 'a'"):
        build_dataset("folder", root=tmp_path, num_classes=3)


@pytest.mark.parametrize("name", ["cityscapes", "ade20k", "folder"])
def test_empty_dataset_folder_names_folder_and_layout(tmp_path: Path, name: str) -> None:
    options = {"num_classes": 2} if name == "folder" else {}
    with pytest.raises(FileNotFoundError, match=r"folder not found: .*\nexpected layout"):
        build_dataset(name, root=tmp_path, **options)
    sub = {"cityscapes": "leftImg8bit/train", "ade20k": "images/training", "folder": "images"}
    (tmp_path / sub[name]).mkdir(parents=True)
    with pytest.raises(DataError, match=rf"{sub[name]}\n?.*\n?expected layout"):
        build_dataset(name, root=tmp_path, **options)


def test_folder_without_masks_folder_names_it(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", seed=0)
    with pytest.raises(FileNotFoundError, match=r"folder not found: .*masks\nexpected layout"):
        build_dataset("folder", root=tmp_path, num_classes=2)


def test_folder_reduce_zero_label_and_label_map(tmp_path: Path) -> None:
    """Issue 16: a "void" value other than 255 (CamVid's 11, many tools' 0) is remapped."""
    mask = np.array([[0, 1, 2, 11, 255, 3]], np.uint8)
    write_image(tmp_path / "images" / "a.png", 0, size=mask.shape)
    write_mask(tmp_path / "masks" / "a.png", mask)
    mapped = build_dataset("folder", root=tmp_path, num_classes=11, label_map={11: 255})
    assert mapped.load(0)[1].tolist() == [[0, 1, 2, 255, 255, 3]]
    reduced = build_dataset("folder", root=tmp_path, num_classes=11, reduce_zero_label=True)
    assert reduced.load(0)[1].tolist() == [[255, 0, 1, 10, 255, 2]]
    # keys as strings (a saved config's YAML/JSON) and label_map after reduce_zero_label
    both = build_dataset(
        "folder", root=tmp_path, num_classes=3, reduce_zero_label=True, label_map={"11": "255"}
    )
    assert both.load_label(0).tolist() == [[255, 0, 1, 255, 255, 2]]
    with pytest.raises(DataError, match=r"a\.png: mask values 11 .*label_map=\{11: 255\}"):
        build_dataset("folder", root=tmp_path, num_classes=11).load(0)


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        ([11, 255], r"label_map must be a mapping of raw mask value"),
        ({300: 1}, r"label_map key \(a raw mask value\) must be an integer in 0\.\.255, got 300"),
        ({11: 12}, r"label_map\[11\] = 12 is not a class of this 12-class.*0\.\.11 or 255"),
        ({11: True}, r"label_map\[11\] must be an integer"),
    ],
)
def test_folder_label_map_is_validated(tmp_path: Path, label_map: object, message: str) -> None:
    make_folder(tmp_path, ["a"])
    with pytest.raises(ValueError, match=r"folder dataset .*: " + message):
        build_dataset("folder", root=tmp_path, num_classes=12, label_map=label_map)
    with pytest.raises(ValueError, match="reduce_zero_label must be true or false"):
        build_dataset("folder", root=tmp_path, num_classes=12, reduce_zero_label="yes")
    with pytest.raises(TypeError, match=r"\['ignore_index'\].*label_map=\{V: 255\}"):
        build_dataset("folder", root=tmp_path, num_classes=12, ignore_index=11)
