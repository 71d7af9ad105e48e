"""avg_non_ignore: mmseg's cross-entropy denominator (issue 12, part 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import nrdseg
from nrdseg.config.run import load_config
from nrdseg.ops.cross_entropy import cross_entropy
from tests.conftest import tiny_options

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _half_ignored(batch: int = 2, classes: int = 4, size: int = 8):
    logits = torch.randn(batch, classes, size, size)
    target = torch.randint(0, classes, (batch, size, size))
    target[..., : size // 2] = 255
    return logits, target


def test_official_setting_divides_by_all_pixels_and_the_other_by_labelled_ones():
    logits, target = _half_ignored()
    valid_mean = F.cross_entropy(logits, target, ignore_index=255)
    official = cross_entropy(logits, target, avg_non_ignore=False)
    torch.testing.assert_close(official, valid_mean / 2)
    torch.testing.assert_close(cross_entropy(logits, target, avg_non_ignore=True), valid_mean)


def test_a_crop_without_labels_gives_zero_not_nan():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255)
    for avg_non_ignore in (False, True):
        loss = cross_entropy(logits, target, avg_non_ignore=avg_non_ignore)
        assert loss.item() == 0.0
        loss.backward()


def test_zoo_models_default_to_the_official_normalisation():
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50"))
    assert model.avg_non_ignore is False
    other = nrdseg.create_model(
        "nrd_r50", num_classes=3, avg_non_ignore=True, **tiny_options("nrd_r50")
    )
    assert other.avg_non_ignore is True and other.config["avg_non_ignore"] is True


def test_main_and_aux_losses_follow_the_setting():
    model = nrdseg.create_model("nrd_r50", num_classes=4, **tiny_options("nrd_r50")).train()
    images = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, 4, (2, 64, 64))
    labels[..., :32] = 255
    results = {}
    for avg_non_ignore in (False, True):
        model.avg_non_ignore = avg_non_ignore
        torch.manual_seed(3)  # the same dropout masks
        results[avg_non_ignore] = model.loss(images, labels)
    for key in ("loss_main", "loss_aux", "loss"):
        torch.testing.assert_close(results[False][key], results[True][key] / 2)


def test_the_models_own_padding_never_counts_as_pixels():
    """A 50x70 batch, all labelled, is padded to 64x96 inside: both settings agree."""
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50")).train()
    images = torch.randn(2, 3, 50, 70)
    labels = torch.randint(0, 3, (2, 50, 70))
    results = []
    for avg_non_ignore in (False, True):
        model.avg_non_ignore = avg_non_ignore
        torch.manual_seed(3)
        results.append(model.loss(images, labels)["loss"])
    torch.testing.assert_close(results[0], results[1])


@pytest.mark.parametrize(
    "path",
    sorted(CONFIGS.glob("cityscapes/*.yaml"))
    + sorted(CONFIGS.glob("ade20k/*.yaml"))
    + sorted(CONFIGS.glob("pascal_context*/*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_paper_configs_use_the_official_normalisation(path):
    assert load_config(path).model.options["avg_non_ignore"] is False


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("synthetic/*.yaml")), ids=lambda p: p.stem)
def test_own_data_configs_average_over_labelled_pixels(path):
    assert load_config(path).model.options["avg_non_ignore"] is True
