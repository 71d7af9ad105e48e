"""The training/test resize does what mmcv does unless asked: bilinear, no antialiasing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from nrdseg.config.run import TransformsConfig, load_config
from nrdseg.data.transforms import RandomRescale
from nrdseg.engine.build import build_split

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _shrink(image: torch.Tensor, antialias: bool) -> torch.Tensor:
    mask = tv_tensors.Mask(torch.zeros(image.shape[-2:], dtype=torch.uint8))
    step = RandomRescale(scale=(40, 30), antialias=antialias)
    out, _ = step(tv_tensors.Image(image), mask)
    return out.float()


def test_default_is_plain_bilinear_like_cv2_inter_linear():
    image = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8)
    out = _shrink(image, antialias=False)
    assert out.shape == (3, 30, 40)
    reference = F.interpolate(
        image[None].float(), size=(30, 40), mode="bilinear", align_corners=False
    )[0]
    assert (out - reference).abs().max() <= 1.0  # uint8 rounding
    # Without a low-pass filter, noise shrunk 3x keeps most of its contrast.
    assert out.std() > 2 * _shrink(image, antialias=True).std()


def test_transforms_default_to_the_official_choice():
    assert TransformsConfig().antialias is False


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_the_config_reaches_the_train_and_test_resize(antialias, train):
    cfg = load_config(CONFIGS / "synthetic" / "nrd.yaml", {"data.transforms.antialias": antialias})
    spec = cfg.data.train if train else cfg.data.val
    dataset = build_split(spec, train=train, config=cfg)
    steps = [s for s in dataset.transforms.steps.transforms if isinstance(s, RandomRescale)]
    assert steps and all(step.antialias is antialias for step in steps)
