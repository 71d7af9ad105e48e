"""The config zoo that ships with the package (``nrdseg/configs``, the repository's
``configs/``), found by name from anywhere: detectron2's ``model_zoo.get_config_file``
idea. ``nrdseg train cityscapes/nrd_r50.yaml`` and ``load_config("configs/camvid/
nrd_lite0.yaml")`` read the packaged file when no such file exists where they run.
"""

from __future__ import annotations

from pathlib import Path

from nrdseg.utils.names import did_you_mean

#: The packaged configs' folder (``_base_/`` holds the files the others build on).
CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
#: The folder name a clone's paths start with (``configs/camvid/nrd_lite0.yaml``).
_PREFIX = "configs/"


def config_names() -> list[str]:
    """Every packaged config a run can start from, as ``dataset/name.yaml`` (sorted; the
    ``_base_`` parts are left out)."""
    return sorted(
        path.relative_to(CONFIG_ROOT).as_posix()
        for path in CONFIG_ROOT.rglob("*.yaml")
        if "_base_" not in path.relative_to(CONFIG_ROOT).parts
    )


def _normalized(name: str) -> str:
    """``name`` as a path under :data:`CONFIG_ROOT`: no ``configs/`` prefix, a suffix."""
    relative = name.removeprefix(_PREFIX)
    return relative if relative.endswith((".yaml", ".yml")) else f"{relative}.yaml"


def closest_name(name: str) -> str:
    """``" (did you mean X?)"`` for the packaged config closest to ``name``, or ``""``."""
    return did_you_mean(_normalized(name), config_names())


def get_config_file(name: str) -> Path:
    """The path of packaged config ``name`` (``"camvid/nrd_lite0.yaml"``; a leading
    ``configs/`` and a missing ``.yaml`` are accepted).

    Raises:
        FileNotFoundError: no packaged config has that name; the message lists the
            closest names.
    """
    path = CONFIG_ROOT / _normalized(name)
    if path.is_file() and path.resolve().is_relative_to(CONFIG_ROOT):
        return path
    raise FileNotFoundError(
        f"no packaged config {name!r}{closest_name(name)}; `nrdseg models --configs` lists them"
    )


def find_config(path: str | Path) -> Path:
    """``path`` where that file exists, else the packaged config of that name.

    Raises:
        FileNotFoundError: neither exists; the message names the path as given and the
            closest packaged names.
    """
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    try:
        return get_config_file(path.as_posix())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"config file not found: {path} (nor as a packaged config"
            f"{closest_name(path.as_posix())}; `nrdseg models --configs` lists them)"
        ) from None
