"""infer_logits: whole, sliding window and TTA against explicit per-pixel / per-view loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nrdseg
from nrdseg.evaluation.inference import infer_logits
from tests.conftest import tiny_options


class CropMeanModel(nn.Module):
    """Logits = image minus its own per-channel mean: every window sees a different mean."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images - images.mean(dim=(2, 3), keepdim=True)


def tiny_model(num_classes: int = 4) -> nn.Module:
    return nrdseg.create_model("nrd_r50", num_classes=num_classes, **tiny_options("nrd_r50"))


def reference_starts(size: int, crop: int, stride: int) -> list[int]:
    if size <= crop:
        return [0]
    return sorted({*range(0, size - crop, stride), size - crop})


@pytest.mark.parametrize(
    ("size", "crop", "stride"),
    [((23, 30), (10, 12), (6, 7)), ((22, 30), (10, 40), (6, 5)), ((9, 9), (4, 4), (4, 4))],
)
def test_slide_averages_windows_like_a_per_pixel_loop(size, crop, stride):
    image = torch.randn(2, 3, *size)
    ours = infer_logits(CropMeanModel(), image, mode="slide", crop_size=crop, stride=stride)
    windows = [
        (top, left, image[..., top : top + crop[0], left : left + crop[1]].mean(dim=(2, 3)))
        for top in reference_starts(size[0], crop[0], stride[0])
        for left in reference_starts(size[1], crop[1], stride[1])
    ]
    expected = torch.empty_like(image)
    for i in range(size[0]):
        for j in range(size[1]):
            means = [
                m
                for top, left, m in windows
                if top <= i < top + crop[0] and left <= j < left + crop[1]
            ]
            expected[:, :, i, j] = image[:, :, i, j] - torch.stack(means).mean(dim=0)
    torch.testing.assert_close(ours, expected)


def test_slide_with_one_window_equals_whole():
    model = tiny_model()
    image = torch.randn(1, 3, 40, 56)
    whole = infer_logits(model, image)
    torch.testing.assert_close(whole, model.eval()(image))
    for crop in ((40, 56), (64, 96)):
        slide = infer_logits(model, image, mode="slide", crop_size=crop, stride=(16, 16))
        torch.testing.assert_close(slide, whole)


def test_multiscale_flip_averages_softmax_over_views():
    model = tiny_model().eval()
    image = torch.randn(2, 3, 40, 56)
    scales = (0.5, 1.25)
    ours = infer_logits(model, image, scales=scales, flip=True)
    expected = torch.zeros(2, 4, 40, 56)
    with torch.no_grad():
        for scale in scales:
            size = (round(40 * scale), round(56 * scale))
            scaled = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            for mirrored in (False, True):
                logits = model(scaled.flip(3) if mirrored else scaled)
                logits = logits.flip(3) if mirrored else logits
                back = F.interpolate(logits, size=(40, 56), mode="bilinear", align_corners=False)
                expected += back.softmax(dim=1) / 4
    torch.testing.assert_close(ours.softmax(dim=1), expected)
    torch.testing.assert_close(ours.exp().sum(dim=1), torch.ones(2, 40, 56))


def test_flip_of_a_mirror_symmetric_model_changes_nothing():
    model = nn.Conv2d(3, 5, 1)  # per-pixel, so mirroring commutes with it
    image = torch.randn(1, 3, 12, 17)
    flipped = infer_logits(model, image, flip=True)
    torch.testing.assert_close(flipped, model(image).detach().log_softmax(dim=1))


def test_runs_in_eval_mode_without_grad_and_restores_training():
    model = tiny_model()
    model.train()
    image = torch.randn(1, 3, 32, 32)
    for kwargs in ({}, {"flip": True}, {"mode": "slide", "crop_size": (16, 16), "stride": (8, 8)}):
        logits = infer_logits(model, image, **kwargs)
        assert model.training
        assert not logits.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(infer_logits(model, image), model.eval()(image))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "tiles"}, "mode must be one of"),
        ({"mode": "slide", "stride": (4, 4)}, "needs crop_size"),
        ({"mode": "slide", "crop_size": (8, 8), "stride": (0, 4)}, "stride must be two positive"),
        ({"crop_size": (8, 8)}, "only with mode='slide'"),
        ({"scales": ()}, "non-empty"),
        ({"scales": (1.0, -0.5)}, "positive"),
    ],
)
def test_bad_options_are_rejected_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        infer_logits(CropMeanModel(), torch.randn(1, 3, 8, 8), **kwargs)


def test_image_must_be_a_batch():
    with pytest.raises(ValueError, match=r"4-D tensor \(B, 3, H, W\), got \(3, 8, 8\)"):
        infer_logits(CropMeanModel(), torch.randn(3, 8, 8))
