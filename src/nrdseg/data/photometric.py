"""Colour jitter with mmsegmentation's PhotoMetricDistortion semantics, on float RGB in [0, 1].

Each of brightness (additive, +-32/255), contrast (multiplicative, 0.5-1.5), saturation
(HSV S scaled by 0.5-1.5) and hue (shifted by up to +-18 of OpenCV's 180 steps) is applied
with probability 1/2; contrast goes first or last at random. Randomness comes from torch so
that DataLoader workers get distinct, seedable streams.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F


def _coin() -> bool:
    return bool(torch.randint(2, ()).item())


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def scale_saturation(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale HSV saturation by ``factor`` (clipped at 1) keeping hue and value.

    With V the max channel, S' = f * S maps each channel c to V - f * (V - c); capping f
    at V / (V - min) is the clip of S' to 1.
    """
    value = image.amax(dim=0, keepdim=True)
    spread = value - image.amin(dim=0, keepdim=True)
    cap = torch.where(spread > 0, value / spread.clamp_min(1e-12), torch.full_like(value, factor))
    return value - torch.clamp(cap, max=factor) * (value - image)


class PhotometricDistortion(nn.Module):
    """``(image float [0, 1], mask) -> (jittered image, mask)``; the mask passes through."""

    def __init__(
        self,
        *,
        brightness_delta: float = 32 / 255,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: int = 18,
    ) -> None:
        super().__init__()
        self.brightness_delta = brightness_delta
        self.contrast_range = contrast_range
        self.saturation_range = saturation_range
        self.hue_delta = hue_delta

    def _contrast(self, image: torch.Tensor) -> torch.Tensor:
        if _coin():
            image = (image * _uniform(*self.contrast_range)).clamp(0, 1)
        return image

    def forward(
        self, image: tv_tensors.Image, mask: tv_tensors.Mask
    ) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        out = image.as_subclass(torch.Tensor)
        if _coin():
            delta = _uniform(-self.brightness_delta, self.brightness_delta)
            out = (out + delta).clamp(0, 1)
        contrast_first = _coin()
        if contrast_first:
            out = self._contrast(out)
        if _coin():
            out = scale_saturation(out, _uniform(*self.saturation_range)).clamp(0, 1)
        if _coin():
            shift = int(torch.randint(-self.hue_delta, self.hue_delta, ()).item())
            out = F.adjust_hue(out, shift / 180)
        if not contrast_first:
            out = self._contrast(out)
        return tv_tensors.Image(out), mask
