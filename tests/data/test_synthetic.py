"""The procedural dataset: deterministic, all classes present, fine structures, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from nrdseg.data import build_dataset, build_transforms
from nrdseg.data.synthetic import LINE, RING, SYNTHETIC_CLASSES, draw_label, render_image


def test_samples_are_deterministic_per_index_and_split() -> None:
    first = build_dataset("synthetic", length=4)
    again = build_dataset("synthetic", length=4)
    for i in range(4):
        assert torch.equal(first[i]["image"], again[i]["image"])
        assert torch.equal(first[i]["label"], again[i]["label"])
    assert not torch.equal(first[0]["label"], first[1]["label"])
    val = build_dataset("synthetic", split="val", length=4)
    other_seed = build_dataset("synthetic", seed=1, length=4)
    assert not torch.equal(first[0]["label"], val[0]["label"])
    assert not torch.equal(first[0]["label"], other_seed[0]["label"])
    assert first[2]["path"] == "synthetic/train/000002"


def test_every_class_appears_in_every_sample() -> None:
    dataset = build_dataset("synthetic", size=(96, 128), length=8)
    assert dataset.classes == SYNTHETIC_CLASSES and len(dataset.palette) == dataset.num_classes
    for i in range(len(dataset)):
        sample = dataset[i]
        assert sample["image"].shape == (3, 96, 128) and sample["label"].shape == (96, 128)
        assert sample["label"].unique().tolist() == list(range(dataset.num_classes))


def _oracle_iou(labels: torch.Tensor, stride: int) -> torch.Tensor:
    """Per-class IoU of the best prediction made at ``stride``: area-averaged one-hot
    labels, upsampled bilinearly, argmax (what a perfect decoder at that stride gives)."""
    onehot = F.one_hot(labels, len(SYNTHETIC_CLASSES)).permute(0, 3, 1, 2).float()
    coarse = F.avg_pool2d(onehot, stride)
    best = F.interpolate(coarse, size=labels.shape[-2:], mode="bilinear").argmax(1)
    classes = torch.arange(len(SYNTHETIC_CLASSES))[:, None, None, None]
    inter = ((best == classes) & (labels == classes)).sum((1, 2, 3))
    union = ((best == classes) | (labels == classes)).sum((1, 2, 3))
    return inter / union


def test_thin_classes_vanish_at_stride_32_but_not_at_stride_4() -> None:
    """What makes the dataset separate decoders that paint at stride 4 from stride-32 ones."""
    dataset = build_dataset("synthetic", length=8)
    labels = torch.stack([dataset[i]["label"] for i in range(8)])
    coarse, fine = _oracle_iou(labels, 32), _oracle_iou(labels, 4)
    for thin in (LINE, RING):
        assert coarse[thin] < 0.02 and fine[thin] > 0.1
    assert fine.mean() - coarse.mean() > 0.2


def test_images_depend_on_labels() -> None:
    """Per-class mean colours differ by more than the noise: the task is learnable."""
    rng = np.random.default_rng(0)
    label = draw_label(rng, 128, 128)
    image = render_image(rng, label).astype(np.float32)
    means = np.stack([image[label == c].mean(0) for c in range(len(SYNTHETIC_CLASSES))])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert gaps[~np.eye(len(means), dtype=bool)].min() > 20


def test_with_train_transforms() -> None:
    transform = build_transforms(train=True, crop_size=(64, 64), scale=(128, 128))
    sample = build_dataset("synthetic", length=2, transforms=transform)[1]
    assert sample["image"].shape == (3, 64, 64) and sample["label"].dtype == torch.int64


def test_worker_processes_give_the_same_batches() -> None:
    dataset = build_dataset("synthetic", size=(32, 32), length=4)
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2))
    assert batches[1]["path"] == ["synthetic/train/000002", "synthetic/train/000003"]
    assert torch.equal(batches[1]["label"][1], dataset[3]["label"])
    assert torch.equal(batches[0]["image"][0], dataset[0]["image"])


def test_generation_is_fast() -> None:
    """CPU time (not wall time, which other processes on a busy machine inflate)."""
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(20):
        render_image(rng, draw_label(rng, 128, 128))
    assert (time.process_time() - start) / 20 < 0.025  # about 3 ms on one core


@pytest.mark.parametrize(
    ("options", "message"),
    [({"size": (8, 64)}, "size must be"), ({"length": 0}, "length must be a positive integer")],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_dataset("synthetic", **options)
