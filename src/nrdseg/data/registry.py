"""Datasets by name: ``build_dataset("cityscapes", root=..., split="val")``."""

from __future__ import annotations

import inspect
from typing import Any

from nrdseg.data.ade20k import ADE20KDataset
from nrdseg.data.base import SegDataset
from nrdseg.data.camvid import CamVidDataset
from nrdseg.data.cityscapes import CityscapesDataset
from nrdseg.data.folder import FolderDataset
from nrdseg.data.pascal_context import PascalContext59Dataset, PascalContextDataset
from nrdseg.data.synthetic import SyntheticDataset
from nrdseg.utils.names import did_you_mean

_DATASETS: dict[str, type[SegDataset]] = {
    "ade20k": ADE20KDataset,
    "camvid": CamVidDataset,
    "cityscapes": CityscapesDataset,
    "folder": FolderDataset,
    "pascal_context": PascalContextDataset,
    "pascal_context_59": PascalContext59Dataset,
    "synthetic": SyntheticDataset,
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`build_dataset`."""
    return sorted(_DATASETS)


def dataset_class(name: str) -> type[SegDataset]:
    if name not in _DATASETS:
        hint = did_you_mean(name, list_datasets())
        raise ValueError(
            f"unknown dataset {name!r}{hint}; valid datasets: {', '.join(list_datasets())}"
        )
    return _DATASETS[name]


def dataset_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments of dataset ``name``'s constructor (annotations evaluated)."""
    parameters = inspect.signature(dataset_class(name).__init__, eval_str=True).parameters
    return {key: p for key, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_dataset(name: str, **kwargs: Any) -> SegDataset:
    """Dataset ``name`` built with its constructor's keyword arguments."""
    options = dataset_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        hint = did_you_mean(unknown[0], options)
        if "ignore_index" in unknown and "label_map" in options:  # mmseg users look for it
            hint = "; to ignore a mask value V, map it to 255: label_map={V: 255}"
        raise TypeError(
            f"unknown option(s) {unknown} for dataset {name!r}; valid: {sorted(options)}{hint}"
        )
    missing = [
        k for k, p in options.items() if p.default is inspect.Parameter.empty and k not in kwargs
    ]
    if missing:
        raise TypeError(f"dataset {name!r} needs {missing}; valid options: {sorted(options)}")
    return _DATASETS[name](**kwargs)
