"""Messages about paths that do not exist."""

from __future__ import annotations

from pathlib import Path


def relative_note(path: str | Path) -> str:
    """``" (a relative path, read from the current directory /abs/cwd)"`` for a relative
    ``path``, ``""`` for an absolute one: config paths are read from where the command
    runs, not from the config file's folder (as in mmseg), which a missing-path message
    should say."""
    if Path(path).is_absolute():
        return ""
    return f" (a relative path, read from the current directory {Path.cwd()})"
