"""The README's Python examples run as written (issue 21, item 12: one used undefined names)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(text: str, heading: str) -> str:
    """The first ```python block after the line ``heading``, before the next heading."""
    section = text[text.index(f"\n{heading}\n") + len(heading) + 2 :]
    match = re.search(r"^```python\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    assert match, f"no python block under {heading!r} in {README}"
    before = section[: match.start()]
    assert not re.search(r"^#{1,6} ", before, flags=re.MULTILINE), (
        f"{heading!r} has no python block"
    )
    return match.group(1)


def test_the_from_python_snippet_runs_as_written(tmp_path, monkeypatch):
    code = python_block(README.read_text(), "### From Python")
    assert len(code.splitlines()) <= 15  # short enough to read at a glance
    monkeypatch.chdir(tmp_path)  # whatever it writes stays out of the repository
    namespace: dict = {}
    exec(compile(code, f"{README} (From Python)", "exec"), namespace)
    labels, image = namespace["labels"], namespace["image"]
    assert labels.shape == image.shape[:2] and labels.dtype == torch.int64
    assert {"loss", "loss_main"} <= set(namespace["losses"])
