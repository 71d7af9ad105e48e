"""Reading images and label masks from disk, with errors that name the file.

Images always come out RGB uint8 whatever the file holds (grayscale, RGBA, palette, 16-bit,
EXIF-rotated). Masks are read without any colour conversion: a palette PNG keeps its
indices, because those indices are the labels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

#: File name endings the folder layout accepts for images (masks are always PNG).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def image_extension_reason(path: Path) -> str | None:
    """None for a file name ending the folder scans read as an image, else the reason."""
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return None
    return f"not an image file extension ({' '.join(IMAGE_EXTENSIONS)})"


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class DataError(ValueError):
    """A sample or dataset that cannot be used; the message names the file and the problem."""


def worker_errors_as_lines(batches: Iterable[Any]) -> Iterator[Any]:
    """The items of ``batches`` (a DataLoader); a :class:`DataError` met in a DataLoader
    worker comes back as the worker's whole traceback, so it is raised again as the one
    line that names the file."""
    iterator = iter(batches)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except DataError as err:
            text = str(err).rstrip()
            if not text.startswith(f"Caught {DataError.__name__} in DataLoader worker"):
                raise
            raise DataError(text.rsplit(f"{DataError.__name__}: ", 1)[-1]) from err
        yield item


#: Environment variable carrying :func:`set_max_image_pixels` into DataLoader workers that
#: start a fresh interpreter (spawn, forkserver): each applies it when importing this module.
MAX_IMAGE_PIXELS_ENV = "NRDSEG_MAX_IMAGE_PIXELS"

#: EXIF orientations that turn the image by 90 degrees (width and height swap).
_TRANSPOSED = {5, 6, 7, 8}

#: What to do about a file over Pillow's pixel limit, said wherever one is met.
PIXEL_LIMIT_FIX = (
    "if you trust the file, raise the limit: --max-image-pixels N (nrdseg predict, eval, "
    "train, data check, data prepare; 0 = no limit) or nrdseg.data.files.set_max_image_pixels(N) in "
    "Python; nrdseg predict --mode slide --crop-size H W --stride H W then segments it "
    "window by window"
)


def set_max_image_pixels(pixels: int | None) -> None:
    """Set Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) for this
    process and the DataLoader workers it starts; ``None`` or 0 removes the limit.

    Pillow warns above the limit and refuses images above twice the limit. ValueError for
    a negative count.
    """
    if pixels is not None and (isinstance(pixels, bool) or pixels < 0):
        raise ValueError(f"max_image_pixels must be a pixel count >= 0, got {pixels!r}")
    Image.MAX_IMAGE_PIXELS = pixels or None
    os.environ[MAX_IMAGE_PIXELS_ENV] = str(pixels or 0)


def _apply_inherited_limit() -> None:
    value = os.environ.get(MAX_IMAGE_PIXELS_ENV)
    if value is not None and value.isdigit():
        Image.MAX_IMAGE_PIXELS = int(value) or None


_apply_inherited_limit()


def reading_error(path: Path, what: str, err: BaseException) -> DataError:
    """The ``DataError`` for a file Pillow could not open or decode, with the cause the
    exception shows rather than a guess: missing, no access, empty, over the pixel limit,
    no known format, a codec Pillow lacks, or a damaged file."""
    if isinstance(err, FileNotFoundError):
        return DataError(f"{what} not found: {path}")
    if isinstance(err, Image.DecompressionBombError):
        return DataError(
            f"{path}: {what} not read: {err} (Pillow's decompression-bomb guard refuses "
            f"images over twice PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}); the "
            f"file itself may be fine: {PIXEL_LIMIT_FIX}"
        )
    if isinstance(err, OSError) and err.errno is not None:  # the system's error, not Pillow's
        return DataError(f"{path}: cannot open {what} ({err.strerror})")
    if isinstance(err, UnidentifiedImageError):
        if path.is_file() and path.stat().st_size == 0:
            return DataError(f"{path}: cannot read {what}, the file is empty (0 bytes)")
        return DataError(
            f"{path}: cannot read {what}, Pillow recognises no image format in it: the file "
            "is corrupt or truncated, not an image, or in a format that needs a Pillow "
            "plugin (HEIC: pillow-heif); convert it to PNG or JPEG"
        )
    if isinstance(err, OSError) and "not available" in str(err):  # "decoder jpeg2k not ..."
        return DataError(
            f"{path}: cannot read {what}: this Pillow was built without the codec the file "
            f"needs ({err}); install a Pillow wheel with it, or convert the file to PNG"
        )
    return DataError(f"{path}: cannot read {what}, the file is corrupt or truncated ({err})")


_warned_over_limit: set[Path] = set()


def _warn_over_limit(path: Path, image: Image.Image, what: str) -> None:
    """Pillow read the image but warned (over the limit, under twice it): give the fix."""
    limit = Image.MAX_IMAGE_PIXELS
    width, height = image.size
    if limit is None or width * height <= limit or path in _warned_over_limit:
        return
    _warned_over_limit.add(path)
    log.warning(
        "%s: %s of %d x %d = %d pixels is over Pillow's decompression-bomb limit "
        "PIL.Image.MAX_IMAGE_PIXELS = %d (read anyway; refused above twice the limit); %s",
        path, what, width, height, width * height, limit, PIXEL_LIMIT_FIX,
    )  # fmt: skip


def _open(path: Path, what: str) -> Image.Image:
    """Decode the whole file now (so truncation surfaces here) and apply EXIF orientation."""
    try:
        with Image.open(path) as image:
            _warn_over_limit(path, image, what)
            image.load()
            return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise reading_error(path, what, err) from err


def read_image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) after EXIF rotation, from the header only (to batch images of one size).

    ``DataError`` as :func:`read_image` gives for a file it cannot read.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            _warn_over_limit(path, image, "image")
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSED:
                width, height = height, width
    except Exception as err:  # PIL raises many types for broken headers and EXIF blocks
        raise reading_error(path, "image", err) from err
    return height, width


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
