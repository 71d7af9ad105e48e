"""Turn the image types users hold (PIL, numpy, tensors) into one normalized float batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from nrdseg.ops.normalize import normalize

ImageLike = torch.Tensor | np.ndarray | Image.Image

#: PIL modes holding more than 8 bits per pixel; ``convert("RGB")`` would clip them at 255.
_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def rgb_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """Any PIL mode or numpy image -> a contiguous H x W x 3 uint8 RGB array.

    Grayscale is repeated over the channels, alpha is dropped and 16-bit values are scaled
    to 8 bits (65535 -> 255), so that a 16-bit PNG and its 8-bit copy give the same labels;
    wider integer arrays (PIL's 32-bit mode "I") are read as 16-bit data.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image if image.mode in _HIGH_BIT_MODES else image.convert("RGB"))
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(
            f"numpy images must be H x W, H x W x 3 or H x W x 4, got shape {image.shape}"
        )
    image = image[:, :, :3]
    if image.dtype == np.uint8:
        return np.array(image, order="C")  # a copy: PIL's arrays are read-only
    if image.dtype.kind in "ui" and image.dtype.itemsize > 1:
        return np.clip(np.rint(image / 257.0), 0, 255).astype(np.uint8)
    raise TypeError(
        f"numpy images must be uint8 or uint16 RGB, got dtype {image.dtype}; "
        "pass float data as a normalized torch tensor instead"
    )


def _to_chw(image: ImageLike) -> torch.Tensor:
    """One image as a (3, H, W) tensor (uint8 stays uint8, float stays float)."""
    if isinstance(image, (Image.Image, np.ndarray)):
        image = torch.from_numpy(rgb_array(image)).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"cannot read an image from a {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image tensors must be (3, H, W), got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(
            f"image tensors must be uint8 RGB or normalized float, got dtype {image.dtype}"
        )
    return image


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
