"""Griffe extension of the docs site: nrdseg's reST-flavoured docstrings as Markdown.

The docstrings write references as reST roles (``:class:`Segmentor```, ``:func:`~a.b.c```)
and examples as doctest lines. Once the package is loaded this rewrites every docstring:
each role becomes an optional cross-reference to the object it names (a link where the
API reference renders it, inline code where it does not), and doctest lines become a
``pycon`` block. A role that names nothing in nrdseg is logged as a warning, so
``mkdocs build --strict`` fails on a stale reference. Loaded by ``mkdocs.yml``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

logger = griffe.get_logger("nrdseg.docs")

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(?P<tilde>~?)(?P<name>[^`]+)`")
ROOT = "nrdseg"


def target_path(obj: griffe.Object, name: str) -> str | None:
    """The full path ``name`` means in ``obj``'s docstring, as Python would resolve it from
    there (``obj``'s members, its parents', their imports), or None if nothing in the
    package has it. A name reached through an import from outside nrdseg is kept as is."""
    first, _, rest = name.partition(".")
    try:
        path = name if first == ROOT else obj.resolve(first)
    except griffe.NameResolutionError:
        return None
    if rest and first != ROOT:
        path = f"{path}.{rest}"
    if path.partition(".")[0] != ROOT:
        return path
    try:
        target = obj.modules_collection.get_member(path)
        return target.final_target.path if target.is_alias else target.path
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def fence_doctests(text: str) -> str:
    """``text`` with each doctest (from a ``>>>`` line to the next blank line) in a
    ``pycon`` code block."""
    out: list[str] = []
    in_block = False
    for line in text.splitlines():
        if not in_block and line.startswith(">>>"):
            out.append("```pycon")
            in_block = True
        elif in_block and not line.strip():
            out.append("```")
            in_block = False
        out.append(line)
    if in_block:
        out.append("```")
    return "\n".join(out)


class RestDocstrings(griffe.Extension):
    """Rewrites reST roles and doctests in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name == ROOT:
            self.rewrite(pkg)

    def rewrite(self, obj: griffe.Object) -> None:
        """Rewrite ``obj``'s docstring and those of its members, recursively."""
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(
                ROLE.sub(lambda match: self.reference(obj, match), obj.docstring.value)
            )
        for member in obj.members.values():
            if not member.is_alias:
                self.rewrite(member)

    def reference(self, obj: griffe.Object, match: re.Match[str]) -> str:
        """One role as an optional autorefs reference, or as code when it is stale."""
        name = match["name"]
        title = f"<code>{html.escape(name.rsplit('.', 1)[-1] if match['tilde'] else name)}</code>"
        path = target_path(obj, name)
        if path is None:
            logger.warning(
                "%s:%s: %s names nothing in %s",
                obj.relative_filepath,
                obj.docstring.lineno if obj.docstring else "?",
                match[0],
                ROOT,
            )
            return title
        return f'<autoref identifier="{html.escape(path)}" optional>{title}</autoref>'
