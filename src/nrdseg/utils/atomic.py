"""Files and directories that appear whole or not at all, with the umask's permissions.

Directories are written next to their destination and renamed into place, so a crash
leaves either the old version or the new one, never half of one. They and their files
get the permissions the umask gives (0755 / 0644 under 022), not tempfile's private
0700 / 0600, so that others on a shared machine can read checkpoints and outputs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask, from /proc where Linux shows it (no moment with another mask)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """The umask's modes for ``root`` and its tree: mkdtemp makes 0700, and safetensors
    writes its files 0600, whatever the umask."""
    umask = current_umask()
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o777 & ~umask)
        elif path.is_file():
            os.chmod(path, 0o666 & ~umask)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``final`` by rename.

    An existing ``final`` is set aside as ``.NAME.old-*`` for the moment between the two
    renames (a directory cannot be swapped in one); it is put back if the second fails,
    and a process killed in between leaves it for ``remove_stale_temporaries`` to restore.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _apply_umask(tmp)
        _fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file through a temporary sibling + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would outlive the rename
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
