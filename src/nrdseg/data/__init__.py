"""Datasets in the layouts users already have, a procedural demo dataset, and transforms."""

from nrdseg.data.base import PairedFileDataset, SegDataset
from nrdseg.data.files import DataError, read_image, read_mask
from nrdseg.data.registry import build_dataset, list_datasets
from nrdseg.data.transforms import build_transforms
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataError",
    "PairedFileDataset",
    "SegDataset",
    "build_dataset",
    "build_transforms",
    "list_datasets",
    "read_image",
    "read_mask",
]
