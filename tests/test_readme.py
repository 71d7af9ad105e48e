"""The README and the docs' getting-started page: their Python example runs as written, and
the README's links (read on GitHub, outside the docs site's own link check) reach a file
and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: (file, heading of its "From Python" example): the README's and the docs page it leads to.
EXAMPLES = [(README, "### From Python"), (ROOT / "docs" / "getting-started.md", "## From Python")]


def python_block(text: str, heading: str) -> str:
    """The first ```python block after the line ``heading``, before the next heading."""
    section = text[text.index(f"\n{heading}\n") + len(heading) + 2 :]
    match = re.search(r"^```python\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    assert match, f"no python block under {heading!r}"
    before = section[: match.start()]
    assert not re.search(r"^#{1,6} ", before, flags=re.MULTILINE), (
        f"{heading!r} has no python block"
    )
    return match.group(1)


@pytest.mark.parametrize(("path", "heading"), EXAMPLES, ids=lambda x: getattr(x, "name", x))
def test_the_from_python_snippet_runs_as_written(path, heading, tmp_path, monkeypatch):
    code = python_block(path.read_text(), heading)
    assert len(code.splitlines()) <= 15  # short enough to read at a glance
    monkeypatch.chdir(tmp_path)  # whatever it writes stays out of the repository
    namespace: dict = {}
    exec(compile(code, f"{path} ({heading})", "exec"), namespace)
    labels, image = namespace["labels"], namespace["image"]
    assert labels.shape == image.shape[:2] and labels.dtype == torch.int64
    assert {"loss", "loss_main"} <= set(namespace["losses"])


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown``: lower case, punctuation other
    than ``-`` and ``_`` dropped, spaces as ``-`` (code blocks skipped)."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)
    headings = re.findall(r"^#{1,6} (.+)$", prose, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_of_the_readme_reaches_a_file_and_heading():
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    relative = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in relative)  # it leads into the docs
    for link in relative:
        target, _, anchor = link.partition("#")
        path = ROOT / target
        assert path.exists(), f"README links to {target}, which does not exist"
        if anchor:
            assert anchor in github_anchors(path.read_text()), f"README: no heading #{anchor}"
