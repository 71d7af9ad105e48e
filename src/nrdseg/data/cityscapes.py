"""Cityscapes (fine annotations, 19 training classes) in its official folder layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrdseg.data.base import BenchmarkDataset, list_files
from nrdseg.data.files import DataError
from nrdseg.data.labels import IGNORE_INDEX, identity_map

CITYSCAPES_CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "train", "motorcycle", "bicycle",
]  # fmt: skip

CITYSCAPES_PALETTE = [
    [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
    [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
    [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
    [0, 80, 100], [0, 0, 230], [119, 11, 32],
]  # fmt: skip

#: Official Cityscapes label ids of the 19 training classes, in training-id order.
_TRAIN_CLASS_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelTrainIds.png"
LABEL_ID_SUFFIX = "_gtFine_labelIds.png"

LAYOUT = (
    "  ROOT/leftImg8bit/{split}/{city}/{name}_leftImg8bit.png\n"
    "  ROOT/gtFine/{split}/{city}/{name}_gtFine_labelTrainIds.png"
)


def id_to_train_id() -> np.ndarray:
    """256-entry table: Cityscapes label id (``*_labelIds.png``) -> training id or 255."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[_TRAIN_CLASS_IDS] = np.arange(len(_TRAIN_CLASS_IDS), dtype=np.uint8)
    return table


def train_id_to_id() -> np.ndarray:
    """256-entry table: training id -> Cityscapes label id, the test server's pixel values.

    The inverse of :func:`id_to_train_id` on the 19 classes; anything else (255) -> 0,
    "unlabeled".
    """
    table = np.zeros(256, dtype=np.uint8)
    table[: len(_TRAIN_CLASS_IDS)] = _TRAIN_CLASS_IDS
    return table


def mask_path(root: Path, image: Path, suffix: str) -> Path:
    """The gtFine file beside ``root/leftImg8bit/split/city/NAME_leftImg8bit.png``."""
    relative = image.relative_to(root / "leftImg8bit")
    name = relative.name[: -len(IMAGE_SUFFIX)] + suffix
    return root / "gtFine" / relative.parent / name


class CityscapesDataset(BenchmarkDataset):
    """``split`` is train, val or test; masks are ``*_gtFine_labelTrainIds.png``.

    Only ``*_labelIds.png`` on disk means the dataset was never converted: the error says
    to run ``nrdseg data prepare cityscapes ROOT``.
    """

    CLASSES = CITYSCAPES_CLASSES
    PALETTE = CITYSCAPES_PALETTE
    label_table = staticmethod(identity_map)

    @classmethod
    def find_pairs(cls, root: Path, split: str) -> list[tuple[Path, Path]]:
        images = list_files(root / "leftImg8bit" / split, f"*/*{IMAGE_SUFFIX}", layout=LAYOUT)
        pairs = [(image, mask_path(root, image, LABEL_SUFFIX)) for image in images]
        unconverted = [
            image
            for image, mask in pairs
            if not mask.exists() and mask_path(root, image, LABEL_ID_SUFFIX).exists()
        ]
        if unconverted:
            raise DataError(
                f"{len(unconverted)} Cityscapes image(s) under {root / 'gtFine' / split} have "
                f"*{LABEL_ID_SUFFIX} but no *{LABEL_SUFFIX} (e.g. for {unconverted[0]}); "
                f"run `nrdseg data prepare cityscapes {root}` once to convert them"
            )
        return pairs
