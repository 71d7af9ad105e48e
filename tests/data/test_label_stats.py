"""Dataset-level label statistics: counts against numpy, sampling, and each finding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from nrdseg.data import build_dataset
from nrdseg.data.label_stats import class_pixel_counts, label_statistics, sample_indices
from tests.datasets_on_disk import make_folder, write_image, write_mask


def _folder(root: Path, masks: list[np.ndarray], classes: list[str] | None = None) -> None:
    for i, mask in enumerate(masks):
        write_image(root / "images" / f"s{i}.png", i, size=mask.shape)
        write_mask(root / "masks" / f"s{i}.png", mask)
    if classes is not None:
        (root / "classes.yaml").write_text(yaml.safe_dump({"classes": classes}))


def _codes(stats) -> list[str]:
    return [finding.code for finding in stats.findings()]


def test_counts_match_numpy_over_every_mask(tmp_path: Path) -> None:
    masks = make_folder(tmp_path, ["a", "b", "c"], num_classes=4)
    dataset = build_dataset("folder", root=tmp_path, num_classes=4)
    counts, ignored = class_pixel_counts(dataset)
    everything = np.concatenate([m.ravel() for m in masks.values()])
    assert counts.dtype == np.int64 and counts.shape == (4,)
    np.testing.assert_array_equal(counts, [(everything == c).sum() for c in range(4)])
    assert ignored == (everything == 255).sum()
    stats = label_statistics(dataset)
    assert stats.images.tolist() == [3, 3, 3, 3] and not stats.sampled
    assert stats.frequencies.sum() == pytest.approx(1.0)


def test_zero_255_masks_of_a_two_class_set_are_an_error_naming_the_fix(tmp_path: Path) -> None:
    """Failure 1 of issue 16: 0/255 masks train class 1 never, silently."""
    mask = np.zeros((6, 10), np.uint8)
    mask[2:5, 3:8] = 255
    _folder(tmp_path, [mask, mask], classes=["background", "object"])
    stats = label_statistics(build_dataset("folder", root=tmp_path))
    (finding,) = stats.findings()
    assert finding.severity == "error" and finding.code == "zero_255_masks"
    assert "label_map={255: 1}" in finding.message and "'object'" in finding.message
    assert "(CLI: --set 'label_map={255: 1}')" in finding.message
    # a training run names the config key of every split, so that the sets keep agreeing
    keys = ("data.train.options.label_map", "data.val.options.label_map")
    (finding,) = stats.findings(label_map_keys=keys)
    assert (
        "(CLI: --set 'data.train.options.label_map={255: 1}' "
        "--set 'data.val.options.label_map={255: 1}')" in finding.message
    )
    # the suggested fix works: class 1 is counted, nothing is ignored, no findings
    fixed = label_statistics(build_dataset("folder", root=tmp_path, label_map={255: 1}))
    assert fixed.pixels.tolist() == [2 * 45, 2 * 15] and fixed.ignored == 0
    assert fixed.findings() == []


def test_missing_class_mostly_ignored_and_void_class(tmp_path: Path) -> None:
    mask = np.full((6, 10), 255, np.uint8)
    mask[0, :] = 0
    mask[1, :4] = 2
    _folder(tmp_path, [mask], classes=["road", "car", "void"])
    stats = label_statistics(build_dataset("folder", root=tmp_path))
    assert _codes(stats) == ["class_never_occurs", "mostly_ignored", "void_class_trained"]
    messages = [f.message for f in stats.findings()]
    assert "class 1 ('car') never occurs in all 1 samples" in messages[0]
    assert "covers 77%" in messages[1]
    assert "label_map={2: 255}" in messages[2]


def test_scaled_mask_values_are_suspicious(tmp_path: Path) -> None:
    mask = np.zeros((6, 10), np.uint8)
    mask[:2] = 10
    mask[2:4] = 20
    _folder(tmp_path, [mask])
    stats = label_statistics(build_dataset("folder", root=tmp_path, num_classes=21))
    assert "scaled_values" in _codes(stats)
    assert "multiple of 10" in next(
        f.message for f in stats.findings() if f.code == "scaled_values"
    )


def test_big_sets_are_sampled_evenly_and_say_so(tmp_path: Path) -> None:
    assert sample_indices(10, None) == list(range(10))
    assert sample_indices(10, 4) == [0, 3, 6, 9]
    assert sample_indices(3, 5) == [0, 1, 2]
    make_folder(tmp_path, [f"s{i}" for i in range(5)], num_classes=2)
    stats = label_statistics(build_dataset("folder", root=tmp_path, num_classes=2), max_samples=2)
    assert stats.samples == 2 and stats.sampled
    assert "an evenly spaced sample of 2 of 5 samples" in stats.table()
    record = stats.to_dict()
    assert record["sampled"] and record["classes"][1]["name"] == "class_1"


def test_unreadable_masks_are_listed_not_counted(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a", "b"], num_classes=2)
    (tmp_path / "masks" / "b.png").write_bytes(b"not a png")
    stats = label_statistics(build_dataset("folder", root=tmp_path, num_classes=2))
    assert stats.samples == 1 and stats.bad[0][0] == 1 and "b.png" in stats.bad[0][1]


def test_background_and_ignore_in_a_bigger_set_only_warns(tmp_path: Path) -> None:
    mask = np.zeros((6, 10), np.uint8)
    mask[:2] = 255
    _folder(tmp_path, [mask])
    stats = label_statistics(build_dataset("folder", root=tmp_path, num_classes=3))
    assert _codes(stats) == ["class_never_occurs", "class_never_occurs"]
    assert all(f.severity == "warning" for f in stats.findings())


def test_a_one_class_set_of_0_255_masks_is_an_error_naming_the_binary_fix(tmp_path: Path) -> None:
    """Issue 21, failure 1: num_classes 1 on 0/255 masks trained on a zero loss, "mIoU 1"."""
    mask = np.zeros((6, 10), np.uint8)
    mask[2:5, 3:8] = 255
    _folder(tmp_path, [mask, mask])
    stats = label_statistics(build_dataset("folder", root=tmp_path, num_classes=1))
    (finding,) = stats.findings()
    assert finding.severity == "error" and finding.code == "one_class"
    assert "its masks hold only 0 and 255 (the usual 0/255 mask export" in finding.message
    assert "num_classes: 2" in finding.message and "label_map={255: 1}" in finding.message
    assert "model.num_classes: 1 trains one sigmoid logit" in finding.message
    fixed = build_dataset("folder", root=tmp_path, num_classes=2, label_map={255: 1})
    assert label_statistics(fixed).findings() == []


def test_masks_that_are_all_ignore_are_an_error(tmp_path: Path) -> None:
    """reduce_zero_label on a 0/255 export turns every pixel into ignore: nothing to learn."""
    mask = np.zeros((6, 10), np.uint8)
    mask[2:5, 3:8] = 255
    _folder(tmp_path, [mask, mask])
    dataset = build_dataset("folder", root=tmp_path, num_classes=2, reduce_zero_label=True)
    stats = label_statistics(dataset)
    assert stats.labelled == 0 and stats.ignored == 120
    (finding,) = stats.findings()
    assert finding.severity == "error" and finding.code == "all_ignored"
    assert "reduce_zero_label (it makes 0 ignore)" in finding.message


def test_a_label_map_that_leaves_no_class_is_refused_when_built(tmp_path: Path) -> None:
    _folder(tmp_path, [np.zeros((6, 10), np.uint8)])
    with pytest.raises(ValueError, match=r"leave no mask value that maps to a class"):
        build_dataset("folder", root=tmp_path, num_classes=1, label_map={0: 255})
