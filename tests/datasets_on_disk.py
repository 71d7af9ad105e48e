"""Tiny datasets written to temporary folders in each real on-disk layout, for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (6, 10)  # H, W of every fixture image


def write_image(path: Path, seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A random RGB image (JPEG or PNG by suffix); returns the pixels as saved (PNG only exact)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def write_mask(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def random_mask(seed: int, allowed: list[int], size: tuple[int, int] = SIZE) -> np.ndarray:
    """Every allowed value appears at least once (the first len(allowed) pixels)."""
    values = np.random.default_rng(seed).choice(np.array(allowed), size=size).astype(np.uint8)
    flat = values.reshape(-1)
    count = min(len(allowed), flat.size)
    flat[:count] = np.array(allowed[:count], dtype=np.uint8)
    return values


def make_cityscapes(
    root: Path, *, split: str = "train", per_city: int = 2, label_ids: bool = False
) -> list[np.ndarray]:
    """Two cities; masks as labelTrainIds (0..18, 255) or, with label_ids, raw labelIds."""
    masks = []
    for c, city in enumerate(("aachen", "bremen")):
        for i in range(per_city):
            name = f"{city}_{i:06d}_000019"
            write_image(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", 10 * c + i)
            if label_ids:
                values = random_mask(c * 7 + i, list(range(34)))
                write_mask(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", values)
            else:
                values = random_mask(c * 7 + i, [*range(19), 255])
                write_mask(
                    root / "gtFine" / split / city / f"{name}_gtFine_labelTrainIds.png", values
                )
            masks.append(values)
    return masks


def make_ade20k(root: Path, *, split: str = "training", count: int = 3) -> list[np.ndarray]:
    """``root/ADEChallengeData2016``; masks use 0 ("other") and 1..150."""
    base = root / "ADEChallengeData2016"
    masks = []
    for i in range(count):
        name = f"ADE_{split[:5]}_{i:08d}"
        write_image(base / "images" / split / f"{name}.jpg", i)
        values = random_mask(i, [0, 1, 2, 75, 150])
        write_mask(base / "annotations" / split / f"{name}.png", values)
        masks.append(values)
    return masks


def make_pascal_context(root: Path, *, split: str = "train", count: int = 3) -> list[np.ndarray]:
    """``root/VOCdevkit/VOC2010`` with a split file listing ``count`` ids."""
    voc = root / "VOCdevkit" / "VOC2010"
    ids = [f"2008_{i:06d}" for i in range(count)]
    masks = []
    for i, name in enumerate(ids):
        write_image(voc / "JPEGImages" / f"{name}.jpg", i)
        values = random_mask(i, [0, 1, 30, 59])
        write_mask(voc / "SegmentationClassContext" / f"{name}.png", values)
        masks.append(values)
    split_file = voc / "ImageSets" / "SegmentationContext" / f"{split}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("\n".join(ids) + "\n")
    return masks


def make_folder(root: Path, stems: list[str], *, num_classes: int = 3) -> dict[str, np.ndarray]:
    """``root/images/{stem}.png`` + ``root/masks/{stem}.png`` with values 0..num_classes-1, 255."""
    masks = {}
    for i, stem in enumerate(stems):
        write_image(root / "images" / f"{stem}.png", i)
        masks[stem] = random_mask(i, [*range(num_classes), 255])
        write_mask(root / "masks" / f"{stem}.png", masks[stem])
    return masks


def make_camvid(root: Path, *, counts: dict[str, int] | None = None) -> dict[str, list[np.ndarray]]:
    """SegNet's ``CamVid/``: ``{split}/*.png`` + ``{split}annot/*.png`` with ids 0-11
    (11 = unlabelled) and the ``{split}.txt`` lists it ships."""
    masks: dict[str, list[np.ndarray]] = {}
    for s, (split, count) in enumerate((counts or {"train": 3, "val": 2, "test": 2}).items()):
        masks[split] = []
        lines = []
        for i in range(count):
            name = f"0001TP_{1000 * s + 30 * i:06d}.png"
            write_image(root / split / name, 10 * s + i)
            values = random_mask(10 * s + i, list(range(12)))
            write_mask(root / f"{split}annot" / name, values)
            masks[split].append(values)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return masks
