"""PASCAL Context (VOC2010 images, 60 classes with background, or 59 without)."""

from __future__ import annotations

from pathlib import Path

from nrdseg.data.ade20k import ADE20K_PALETTE
from nrdseg.data.base import BenchmarkDataset, read_split_file
from nrdseg.data.labels import identity_map, reduce_zero_label_map

#: Background, then the 59 classes in the order of the standard conversion (alphabetical).
PASCAL_CONTEXT_CLASSES = [
    "background", "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird",
    "boat", "book", "bottle", "building", "bus", "cabinet", "car", "cat", "ceiling", "chair",
    "cloth", "computer", "cow", "cup", "curtain", "dog", "door", "fence", "floor", "flower",
    "food", "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain",
    "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep",
    "shelves", "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree",
    "truck", "tvmonitor", "wall", "water", "window", "wood",
]  # fmt: skip
PASCAL_CONTEXT_PALETTE = ADE20K_PALETTE[:60]

LAYOUT = (
    "  ROOT/VOC2010/JPEGImages/{id}.jpg\n"
    "  ROOT/VOC2010/SegmentationClassContext/{id}.png   (values 0..59, 0 = background)\n"
    "  ROOT/VOC2010/ImageSets/SegmentationContext/{split}.txt   (one id per line)\n"
    "  (ROOT may also be VOC2010 itself or the folder holding VOCdevkit)"
)


def find_voc2010(root: Path) -> Path:
    """``root`` itself, ``root/VOC2010`` or ``root/VOCdevkit/VOC2010``, whichever has images."""
    for candidate in (root, root / "VOC2010", root / "VOCdevkit" / "VOC2010"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise FileNotFoundError(
        f"no VOC2010/JPEGImages folder under {root}\nexpected layout:\n{LAYOUT}"
    )


class PascalContextDataset(BenchmarkDataset):
    """60 classes, background = class 0; ``split`` names a file in ImageSets/SegmentationContext."""

    CLASSES = PASCAL_CONTEXT_CLASSES
    PALETTE = PASCAL_CONTEXT_PALETTE
    label_table = staticmethod(identity_map)

    @classmethod
    def find_pairs(cls, root: Path, split: str) -> list[tuple[Path, Path]]:
        voc = find_voc2010(root)
        split_file = voc / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        return [
            (voc / "JPEGImages" / f"{name}.jpg", voc / "SegmentationClassContext" / f"{name}.png")
            for name in read_split_file(split_file, layout=LAYOUT)
        ]


class PascalContext59Dataset(PascalContextDataset):
    """The 59-class benchmark: background is ignored (255), the other ids shift down by one."""

    CLASSES = PASCAL_CONTEXT_CLASSES[1:]
    PALETTE = PASCAL_CONTEXT_PALETTE[1:]
    label_table = staticmethod(reduce_zero_label_map)
