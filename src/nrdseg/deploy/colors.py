"""Label images: palette PNGs whose pixel values are class ids, and image + mask blends."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from nrdseg.data.labels import generated_palette


def model_palette(meta: dict[str, Any], num_classes: int) -> list[list[int]]:
    """The dataset palette of ``model.meta`` if it covers every class, else a generated one."""
    palette = meta.get("palette")
    if palette and len(palette) >= num_classes:
        return [[int(c) for c in rgb] for rgb in palette[:num_classes]]
    return generated_palette(num_classes)


def label_png(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> bytes:
    """PNG bytes of an (H, W) label map: palette mode up to 256 classes, else 16-bit gray.

    Either way the stored pixel values are the class ids; the palette only colours them.
    """
    if len(palette) <= 256:
        image = Image.fromarray(labels.astype(np.uint8))  # "L"; putpalette makes it "P"
        image.putpalette([int(c) for rgb in palette for c in rgb])
    else:
        image = Image.fromarray(labels.astype(np.uint16))
    return _png(image)


def gray_png(values: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) map of values 0-255 as plain 8-bit grayscale ("L")."""
    return _png(Image.fromarray(values.astype(np.uint8)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_png(
    image: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]], *, alpha: float = 0.5
) -> bytes:
    """PNG bytes of the RGB image blended with the coloured labels."""
    colors = np.asarray(palette, dtype=np.float32)[labels]
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colors
    return _png(Image.fromarray(np.rint(blend).astype(np.uint8)))
