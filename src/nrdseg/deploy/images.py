"""Which files to segment (files, folders, globs) and their output names."""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from nrdseg.data.files import IMAGE_EXTENSIONS, image_extension_reason
from nrdseg.data.scan import LeftOut, match_files, scan_folder, split_pattern

UNDER_OUTPUT = "under the output folder (a rerun does not segment its own results)"


def expand_inputs(
    inputs: Sequence[str | Path], *, exclude: Path | None = None, left_out: LeftOut | None = None
) -> list[Path]:
    """Files, folders (recursively, through linked sub-folders) and glob patterns -> sorted
    unique absolute files.

    Folders and patterns take the image extensions; a file named explicitly is always
    taken. Files under ``exclude`` (the output folder) are left out. Whatever is left out
    (other extensions, hidden files, broken links, link loops, outputs) is recorded in
    ``left_out`` with its reason. FileNotFoundError for an input that names nothing.
    """
    left_out = LeftOut() if left_out is None else left_out
    found: set[Path] = set()
    for item in inputs:
        path, here = Path(item), LeftOut()
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = scan_folder(path, left_out=here, take=image_extension_reason)
            if not matches:
                raise FileNotFoundError(f"{path}: folder holds no images{_why(here, path)}")
        elif glob.has_magic(str(item)):
            base, pattern = split_pattern(str(item))
            matches = []
            if base.is_dir():
                matches = match_files(base, pattern, left_out=here, take=image_extension_reason)
            if not matches:
                raise FileNotFoundError(f"{item}: pattern matches no images{_why(here, base)}")
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
        left_out.extend(here)
        found.update(Path(os.path.abspath(p)) for p in matches)  # link names kept
    if exclude is not None:
        exclude = exclude.resolve()
        for path in sorted(found):
            if path.resolve().is_relative_to(exclude):
                found.discard(path)
                left_out.add(UNDER_OUTPUT, path)
    return sorted(found)


def _why(left_out: LeftOut, where: Path) -> str:
    extensions = f" ({' '.join(IMAGE_EXTENSIONS)})"
    return extensions + (f"; {left_out.message(where)}" if left_out else "")


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
