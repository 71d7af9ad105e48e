"""Your own data: ``images/`` and ``masks/`` with matching stems, optional splits and classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from nrdseg.data.base import PairedFileDataset, Transform, read_split_file
from nrdseg.data.files import DataError, image_extension_reason
from nrdseg.data.labels import (
    check_metadata,
    generated_palette,
    identity_map,
    reduce_zero_label_map,
    remap_labels,
)
from nrdseg.data.scan import LeftOut, scan_folder
from nrdseg.utils.paths import relative_note
from nrdseg.utils.yaml_read import load_as_written, load_yaml

LAYOUT = (
    "  ROOT/images/{stem}.{jpg,png,...}   (sub-folders allowed: the stem is the relative path)\n"
    "  ROOT/masks/{stem}.png              (single channel; 0..C-1, 255 = ignore; or label_map)\n"
    "  ROOT/classes.yaml                  (optional: classes: [...], palette: [[r, g, b], ...])\n"
    "  ROOT/splits/{split}.txt            (optional: one stem per line)"
)


def find_images(folder: Path) -> dict[str, Path]:
    """Stem (relative path without extension) -> image file, for every image under folder.

    Linked sub-folders are read; files left out (other extensions, hidden files, broken
    links, link loops) are counted in one warning that names them.
    """
    if not folder.is_dir():
        raise FileNotFoundError(
            f"folder not found: {folder}{relative_note(folder)}\nexpected layout:\n{LAYOUT}"
        )
    found: dict[str, Path] = {}
    left_out = LeftOut()
    for path in scan_folder(folder, left_out=left_out, take=image_extension_reason):
        stem = path.relative_to(folder).with_suffix("").as_posix()
        if stem in found:
            raise DataError(f"two images share the stem {stem!r}: {found[stem]} and {path}")
        found[stem] = path
    left_out.warn(folder)
    if not found:
        raise DataError(f"no images in {folder}\nexpected layout:\n{LAYOUT}")
    return found


def read_classes_file(path: Path) -> tuple[list[str], list[list[int]]]:
    """``classes: [...]`` and optional ``palette: [[r, g, b], ...]`` from a YAML file."""
    if not path.is_file():
        raise FileNotFoundError(f"classes file not found: {path}")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:  # else the message names no file
        raise ValueError(f"{path}: not a text (YAML) file ({err})") from err
    try:
        record = load_yaml(text, name=str(path))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(record, dict) or not isinstance(record.get("classes"), list):
        raise ValueError(
            f"{path}: expected a mapping with a 'classes' list of names, e.g. "
            "classes: [background, object]"
        )
    classes = record["classes"]
    palette = record.get("palette") or generated_palette(len(classes))
    if not isinstance(palette, list):
        raise ValueError(f"{path}: 'palette' must be a list of [r, g, b]")
    written = load_as_written(text)["classes"]  # to quote back a name YAML made a boolean
    return check_metadata(classes, palette, source=str(path), written=written)


class FolderDataset(PairedFileDataset):
    """A folder of images and PNG masks (see ``LAYOUT``); mask values are class ids.

    Classes come from ``classes_file`` or ``ROOT/classes.yaml``; without either, give
    ``num_classes`` and the classes are named ``class_0``... with a generated palette.
    ``split`` reads ``ROOT/splits/{split}.txt`` and ``split_file`` any list of stems;
    with neither every image is used.

    Mask values are class ids, 255 ignored, unless remapped (mmseg's terms):
    ``reduce_zero_label`` ignores 0 and shifts the other values down by one;
    ``label_map`` (raw mask value -> class id or 255) sets single values, after
    ``reduce_zero_label``, e.g. ``{11: 255}`` to ignore a "void" value 11.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        split: str | None = None,
        split_file: str | Path | None = None,
        classes_file: str | Path | None = None,
        num_classes: int | None = None,
        reduce_zero_label: bool = False,
        label_map: dict[int, int] | None = None,
        transforms: Transform | None = None,
        on_error: str = "raise",
    ) -> None:
        root = Path(root)
        if not isinstance(reduce_zero_label, bool):
            raise ValueError(f"reduce_zero_label must be true or false, got {reduce_zero_label!r}")
        images = find_images(root / "images")
        if split_file is None and split is not None:
            split_file = root / "splits" / f"{split}.txt"
        if split_file is not None:
            split_file = Path(split_file)
            stems = read_split_file(split_file, layout=LAYOUT)
            unknown = [stem for stem in stems if stem not in images]
            if unknown:
                raise DataError(
                    f"split file {split_file} lists {len(unknown)} stem(s) with no image in "
                    f"{root / 'images'}: {', '.join(unknown[:5])}"
                )
            images = {stem: images[stem] for stem in stems}
        if not (root / "masks").is_dir():
            raise FileNotFoundError(
                f"folder not found: {root / 'masks'}{relative_note(root)}\n"
                f"expected layout:\n{LAYOUT}"
            )
        classes, palette = self._metadata(root, classes_file, num_classes)
        table = reduce_zero_label_map() if reduce_zero_label else identity_map()
        if label_map is not None:
            table = remap_labels(
                table, label_map, num_classes=len(classes), source=f"folder dataset {root}"
            )
        if not (table < len(classes)).any():
            raise ValueError(
                f"folder dataset {root}: reduce_zero_label={reduce_zero_label} and label_map="
                f"{label_map} leave no mask value that maps to a class (each is ignore or "
                "invalid): nothing would be trained or scored; map the values that mark "
                "your classes to class ids"
            )
        super().__init__(
            pairs=[(path, root / "masks" / f"{stem}.png") for stem, path in images.items()],
            label_map=table,
            classes=classes,
            palette=palette,
            transforms=transforms,
            on_error=on_error,
        )

    def _training_ids(self, raw: np.ndarray, mask_path: Path) -> np.ndarray:
        try:
            return super()._training_ids(raw, mask_path)
        except DataError as err:
            raise DataError(
                f"{err}; map other values with the option label_map (raw value -> class id or "
                "255), e.g. label_map={11: 255}, or reduce_zero_label=true for 1-based masks"
            ) from None

    @staticmethod
    def _metadata(
        root: Path, classes_file: str | Path | None, num_classes: int | None
    ) -> tuple[list[str], list[list[int]]]:
        path = Path(classes_file) if classes_file is not None else root / "classes.yaml"
        if classes_file is not None or path.is_file():
            classes, palette = read_classes_file(path)
            if num_classes is not None and num_classes != len(classes):
                raise ValueError(
                    f"num_classes={num_classes} but {path} lists {len(classes)} classes"
                )
            return classes, palette
        if num_classes is None:
            raise ValueError(
                f"{root}: no classes.yaml; give classes_file=PATH or num_classes=N\n"
                f"expected layout:\n{LAYOUT}"
            )
        if not isinstance(num_classes, int) or not 1 <= num_classes <= 255:
            raise ValueError(f"num_classes must be an integer in 1..255, got {num_classes!r}")
        return [f"class_{i}" for i in range(num_classes)], generated_palette(num_classes)
