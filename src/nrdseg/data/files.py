"""Reading images and label masks from disk, with errors that name the file.

Images always come out RGB uint8 whatever the file holds (grayscale, RGBA, palette, 16-bit,
EXIF-rotated). Masks are read without any colour conversion: a palette PNG keeps its
indices, because those indices are the labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

#: File name endings the folder layout accepts for images (masks are always PNG).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class DataError(ValueError):
    """A sample or dataset that cannot be used; the message names the file and the problem."""


def _open(path: Path, what: str) -> Image.Image:
    """Decode the whole file now (so truncation surfaces here) and apply EXIF orientation."""
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except FileNotFoundError as err:
        raise DataError(f"{what} not found: {path}") from err
    except (PermissionError, IsADirectoryError) as err:  # the file is fine, its access is not
        raise DataError(f"{path}: cannot open {what} ({err.strerror})") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{path}: cannot read {what}, the file is corrupt or truncated ({err})"
        ) from err


def read_image(path: str | Path) -> torch.Tensor:
    """An RGB uint8 tensor (3, H, W); 16-bit grayscale is scaled to 8 bits, alpha dropped."""
    path = Path(path)
    image = _open(path, "image")
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        array = np.repeat(gray[:, :, None], 3, axis=2)
    elif image.mode == "F":
        raise DataError(f"{path}: floating-point images are not supported; expected 8/16-bit")
    else:
        array = np.array(image.convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_mask(path: str | Path) -> np.ndarray:
    """The raw label indices (H, W) uint8 of a single-channel mask, before any id mapping."""
    path = Path(path)
    mask = _open(path, "mask")
    if mask.mode in ("L", "P"):
        return np.array(mask)
    if mask.mode == "1":
        return np.array(mask, dtype=np.uint8)
    if mask.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(mask, dtype=np.int64)
        out_of_range = np.unique(wide[(wide < 0) | (wide > 255)])
        if out_of_range.size:
            shown = ", ".join(str(v) for v in out_of_range[:10].tolist())
            raise DataError(
                f"{path}: 16-bit mask holds values {shown} outside 0..255; expected class "
                "indices below 255 and 255 for ignore"
            )
        return wide.astype(np.uint8)
    raise DataError(
        f"{path}: mask has mode {mask.mode} ({len(mask.getbands())} channels); expected a "
        "single-channel PNG (mode L or P, or 16-bit) whose values are class indices"
    )
