"""Finding input files: folders walked through symbolic links, glob patterns matched on
that walk, and every file left out counted with its reason.

Python's ``Path.rglob`` (before 3.13) does not enter linked folders, and ``glob("**")``
follows links without noticing a loop; this walk enters every linked folder once per path
from the top and cuts a link back to one of its own parents, reporting the cut.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

HIDDEN = "hidden (the name starts with '.')"
LOOP = "a link back to a folder above it (a loop), not entered again"
BROKEN = "a broken link or not a regular file"
UNREADABLE = "an unreadable folder"

#: Example paths a message shows per reason.
_SHOWN = 3


@dataclass
class LeftOut:
    """Paths a scan did not take, grouped by reason in the order met."""

    reasons: dict[str, list[Path]] = field(default_factory=dict)

    def add(self, reason: str, path: Path) -> None:
        self.reasons.setdefault(reason, []).append(path)

    def extend(self, other: LeftOut) -> None:
        for reason, paths in other.reasons.items():
            self.reasons.setdefault(reason, []).extend(paths)

    def __len__(self) -> int:
        return sum(len(paths) for paths in self.reasons.values())

    def message(self, where: str | Path) -> str:
        """``left out 3 path(s) under WHERE: 2 hidden (...): a, b; 1 ...: c``."""
        parts = []
        for reason, paths in self.reasons.items():
            shown = ", ".join(str(p) for p in paths[:_SHOWN]) + (", ..." if len(paths) > 3 else "")
            parts.append(f"{len(paths)} {reason}: {shown}")
        return f"left out {len(self)} path(s) under {where}: " + "; ".join(parts)

    def warn(self, where: str | Path) -> None:
        """Log :meth:`message` as a warning when anything was left out."""
        if self:
            log.warning("%s", self.message(where))


def walk_files(root: Path, *, left_out: LeftOut, max_depth: int | None = None) -> Iterator[Path]:
    """Every file under ``root`` (``root / relative``), in name order, depth first.

    Linked folders are entered; a folder that is its own ancestor (a link loop) is not
    entered again and is recorded in ``left_out``, as are broken links, other non-files
    and folders that cannot be listed. ``max_depth`` limits the levels entered (1: the
    files of ``root`` itself).
    """

    def visit(folder: Path, ancestors: frozenset[tuple[int, int]], depth: int) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            left_out.add(UNREADABLE, folder)
            return
        for entry in entries:
            path = folder / entry.name
            if entry.is_dir():  # follows links
                if max_depth is not None and depth >= max_depth:
                    continue
                status = entry.stat()
                key = (status.st_dev, status.st_ino)
                if key in ancestors:
                    left_out.add(LOOP, path)
                    continue
                yield from visit(path, ancestors | {key}, depth + 1)
            elif entry.is_file():
                yield path
            else:
                left_out.add(BROKEN, path)

    status = root.stat()
    yield from visit(root, frozenset({(status.st_dev, status.st_ino)}), 1)


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Glob semantics per path component: ``*`` stays in one component, ``**`` spans any."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _matches(parts[1:], pattern[1:])
    )


def match_files(
    root: Path,
    pattern: str,
    *,
    left_out: LeftOut,
    take: Callable[[Path], str | None] | None = None,
    unmatched: str | None = None,
) -> list[Path]:
    """Files under ``root`` whose relative path matches ``pattern`` (``*/*_x.png``, ``**/*``).

    Hidden files that match are left out (as ``glob`` does) and recorded in ``left_out``;
    ``take`` returns None to keep a matching file or the reason to leave it out. Files
    that do not match are recorded with the reason ``unmatched`` when it is given (where
    every file of the folder is meant to be an input). Only the levels the pattern spans
    are walked, all of them for ``**``.
    """
    parts = tuple(Path(pattern).parts)
    depth = None if "**" in parts else len(parts)
    found = []
    for path in walk_files(root, left_out=left_out, max_depth=depth):
        if not _matches(path.relative_to(root).parts, parts):
            if unmatched is not None:
                left_out.add(unmatched, path)
            continue
        reason = HIDDEN if path.name.startswith(".") else (take(path) if take else None)
        if reason is None:
            found.append(path)
        else:
            left_out.add(reason, path)
    return sorted(found)


def scan_folder(root: Path, *, left_out: LeftOut, take: Callable[[Path], str | None]) -> list[Path]:
    """Every file under ``root`` (links followed) that ``take`` keeps (returns None for);
    hidden files and the others are recorded in ``left_out`` with their reason."""
    return match_files(root, "**/*", left_out=left_out, take=take)


def split_pattern(pattern: str) -> tuple[Path, str]:
    """``"data/*/x/*.png"`` -> ``(Path("data"), "*/x/*.png")``: the folder before the first
    wildcard component, and the rest of the pattern relative to it."""
    parts = Path(pattern).parts
    for index, part in enumerate(parts):
        if glob.has_magic(part):
            return Path(*parts[:index]) if index else Path("."), "/".join(parts[index:])
    return Path(pattern).parent, Path(pattern).name
