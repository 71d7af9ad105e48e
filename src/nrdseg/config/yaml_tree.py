"""YAML config files with ``_base_`` inheritance and dotted ``KEY=VALUE`` overrides.

A file may name one base or a list of bases (paths relative to the file); bases are
merged in order, then the file itself on top. Mappings merge key by key; any other value
(lists included) is replaced whole by the child's. Files are read with
:func:`nrdseg.utils.yaml_read.load_yaml` (``1e-5`` is a float; ``010`` is refused).

An override key is a dotted path whose parts may index lists: ``loss.decode[0].type``,
``[-1]`` for the last item, ``[N]`` (N the length) to append one. A whole list is one
YAML flow value: ``loss.decode=[{type: dice}]``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from nrdseg.config.packaged import closest_name, get_config_file
from nrdseg.config.schema import ConfigError
from nrdseg.utils.yaml_read import load_yaml

BASE_KEY = "_base_"


def deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """A new tree: ``base`` with ``child`` on top; the child wins, mappings merge."""
    merged = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        tree = load_yaml(path.read_text(), name=str(path))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {type(tree).__name__}")
    return tree


def _base_path(path: Path, base: str) -> Path:
    """``base`` relative to the config ``path`` that names it, or where no such file
    exists, the packaged config of that name (so a config of one's own can build on
    ``folder/nrd_lite0_cpu.yaml`` after a pip install)."""
    beside = path.parent / base
    if beside.is_file() or Path(base).is_absolute():
        return beside
    try:
        return get_config_file(base)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: _base_ {base!r}: no file {beside} (relative to the config that names "
            f"it) nor a packaged config of that name{closest_name(base)}"
        ) from None


def load_tree(path: str | Path, *, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The merged tree of ``path`` and all its bases, without the ``_base_`` keys."""
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"{path}: _base_ cycle: {cycle}")
    tree = _read(path)
    bases = tree.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: {BASE_KEY} must be a path or a list of paths, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, load_tree(_base_path(path, base), _chain=(*_chain, path)))
    return deep_merge(merged, tree)


_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[-?[0-9]+\])*)")


def split_key(key: str) -> list[str | int]:
    """``"loss.decode[0].type"`` -> ``["loss", "decode", 0, "type"]``."""
    parts: list[str | int] = []
    for segment in key.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ConfigError(
                f"--set {key}: cannot read the part {segment!r}; write KEY.KEY for sections "
                "and KEY[0] for list items, e.g. loss.decode[0].type"
            )
        parts.append(match[1])
        parts.extend(int(index) for index in re.findall(r"-?[0-9]+", match[2]))
    return parts


def join_key(parts: Sequence[str | int]) -> str:
    """:func:`split_key` undone: ``["loss", "decode", 0]`` -> ``"loss.decode[0]"``."""
    key = ""
    for part in parts:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key


def set_dotted(
    tree: dict[str, Any],
    key: str,
    value: Any,
    *,
    default: Callable[[list[str | int]], Any] = lambda parts: None,
) -> None:
    """``set_dotted(t, "optim.lr", 0.02)`` -> ``t["optim"]["lr"] = 0.02``, making sections.

    List items are indexed as ``loss.decode[0].type`` (see the module docstring); a list
    the tree does not hold yet starts as ``default(parts)`` (the schema's default), else
    empty. ConfigError names the part of ``key`` that failed and why.
    """
    parts = split_key(key)
    node: Any = tree
    for depth, part in enumerate(parts):
        where = join_key(parts[:depth])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ConfigError(
                    f"--set {key}: {where} holds {node!r}, not a list, so it has no item "
                    f"[{part}]; set the whole value instead: --set {where}=..."
                )
            if not -len(node) <= part <= len(node):
                items = f"[0] to [{len(node) - 1}], [-1] the last, " if node else ""
                raise ConfigError(
                    f"--set {key}: index [{part}] is out of range: {where} has {len(node)} "
                    f"item(s) ({items}[{len(node)}] appends)"
                )
            if part == len(node):
                node.append(None)
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {where} holds {node!r}, not a section")
        if depth == len(parts) - 1:
            node[part] = value
            return
        child = node[part] if isinstance(node, list) else node.get(part)
        if child is None:  # a section or list the tree does not hold yet
            if isinstance(parts[depth + 1], int):
                seed = default(parts[: depth + 1])
                child = copy.deepcopy(seed) if isinstance(seed, list) else []
            else:
                child = {}
            node[part] = child
        node = child
