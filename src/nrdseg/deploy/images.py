"""Which files to segment (files, folders, globs), their output names and sizes."""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from nrdseg.data.files import IMAGE_EXTENSIONS, DataError

#: EXIF orientations that turn the image by 90 degrees (width and height swap).
_TRANSPOSED = {5, 6, 7, 8}


def _is_image(path: Path) -> bool:
    """Folders and globs take these extensions; an explicitly named file is always taken."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def expand_inputs(inputs: Sequence[str | Path], *, exclude: Path | None = None) -> list[Path]:
    """Files, folders (recursively) and glob patterns -> sorted unique files.

    Files under ``exclude`` (the output folder) are left out so a rerun does not segment
    its own results.
    """
    found: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = [p for p in path.rglob("*") if _is_image(p)]
            if not matches:
                raise FileNotFoundError(f"{path}: folder holds no images ({_extensions()})")
        elif glob.has_magic(str(item)):
            matches = [Path(p) for p in glob.glob(str(item), recursive=True)]
            matches = [p for p in matches if _is_image(p)]
            if not matches:
                raise FileNotFoundError(f"{item}: pattern matches no images ({_extensions()})")
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
        found.update(p.resolve() for p in matches)
    if exclude is not None:
        exclude = exclude.resolve()
        found = {p for p in found if not p.is_relative_to(exclude)}
    return sorted(found)


def _extensions() -> str:
    return " ".join(IMAGE_EXTENSIONS)


def output_names(files: Sequence[Path]) -> list[Path]:
    """Relative ``.png`` names that mirror the files' folders below their common root.

    Files that differ only in extension (``a.jpg``, ``a.png``) keep it in the name
    (``a_jpg.png``, ``a_png.png``) so that no output overwrites another.
    """
    if not files:
        return []
    root = Path(os.path.commonpath([p.parent for p in files]))
    relative = [p.relative_to(root) for p in files]
    counts = Counter(r.with_suffix(".png") for r in relative)
    return [
        r.with_suffix(".png")
        if counts[r.with_suffix(".png")] == 1
        else r.with_name(r.name.replace(".", "_") + ".png")
        for r in relative
    ]


def probe_size(path: Path) -> tuple[int, int]:
    """(H, W) after EXIF rotation, from the header only, to batch images of one size."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSED:
                width, height = height, width
    except Exception as err:  # PIL raises many types for broken files
        raise DataError(f"{path}: cannot read image, not an image file ({err})") from err
    return height, width
