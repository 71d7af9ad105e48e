"""Image normalisation: the ImageNet statistics every timm backbone here was trained with."""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: ImageNet mean and standard deviation of RGB in [0, 1] (torchvision's and timm's values).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image: torch.Tensor, *, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 RGB (..., 3, H, W) -> float, (x / 255 - mean) / std."""
    m = torch.tensor(mean, device=image.device).view(3, 1, 1)
    s = torch.tensor(std, device=image.device).view(3, 1, 1)
    return (image.float() / 255.0 - m) / s
