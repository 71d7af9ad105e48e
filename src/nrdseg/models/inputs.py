"""Turn the image types users hold (PIL, numpy, tensors) into one normalized float batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

ImageLike = torch.Tensor | np.ndarray | Image.Image


def _to_chw(image: ImageLike) -> torch.Tensor:
    """One image as a (3, H, W) tensor (uint8 stays uint8, float stays float)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"numpy images must be H x W x 3, got shape {image.shape}")
        image = torch.from_numpy(np.array(image[:, :, :3])).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"cannot read an image from a {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image tensors must be (3, H, W), got shape {tuple(image.shape)}")
    return image


def normalize(image: torch.Tensor, *, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 RGB (..., 3, H, W) -> float, (x / 255 - mean) / std."""
    m = torch.tensor(mean, device=image.device).view(3, 1, 1)
    s = torch.tensor(std, device=image.device).view(3, 1, 1)
    return (image.float() / 255.0 - m) / s


def to_batch(
    images: ImageLike | Sequence[ImageLike], *, mean: Sequence[float], std: Sequence[float]
) -> tuple[torch.Tensor, bool]:
    """A normalized (B, 3, H, W) batch and whether the input was a single image.

    A list must hold images of one size; float tensors are taken as already normalized.
    """
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        batch, single = images, False
    elif isinstance(images, (list, tuple)):
        chw = [_to_chw(im) for im in images]
        if len({tuple(t.shape) for t in chw}) > 1:
            raise ValueError("predict() on a list needs images of one size; call it per image")
        batch, single = torch.stack(chw), False
    else:
        batch, single = _to_chw(images)[None], True
    if not batch.is_floating_point():
        batch = normalize(batch, mean=mean, std=std)
    return batch, single
