"""YAML config files with ``_base_`` inheritance and dotted ``KEY=VALUE`` overrides.

A file may name one base or a list of bases (paths relative to the file); bases are
merged in order, then the file itself on top. Mappings merge key by key; any other value
(lists included) is replaced whole by the child's.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from nrdseg.config.schema import ConfigError

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
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {type(tree).__name__}")
    return tree


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
        merged = deep_merge(merged, load_tree(path.parent / base, _chain=(*_chain, path)))
    return deep_merge(merged, tree)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(t, "optim.lr", 0.02)`` -> ``t["optim"]["lr"] = 0.02``, making sections."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"--set {key}: empty part in the dotted key")
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {key}: {where} holds {child!r}, not a section")
        node = child
    node[parts[-1]] = value
