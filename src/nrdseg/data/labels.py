"""Label-id tables (raw mask value -> training id), their checking, and class metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nrdseg.data.files import DataError
from nrdseg.ops.labels import IGNORE_INDEX
from nrdseg.utils.yaml_read import describe_value, text_hint


def identity_map() -> np.ndarray:
    """Masks that already hold training ids (0..C-1, 255 ignored)."""
    return np.arange(256, dtype=np.uint8)


def reduce_zero_label_map() -> np.ndarray:
    """0 ("other"/background) -> ignore, every other id minus one; 255 stays ignore."""
    table = (np.arange(256) - 1).astype(np.uint8)
    table[0] = IGNORE_INDEX
    table[IGNORE_INDEX] = IGNORE_INDEX
    return table


def _label_value(value: object, *, what: str, source: str) -> int:
    """An int (or a YAML/JSON key string of one) in 0..255, else an error naming ``what``."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ValueError(f"{source}: {what} must be an integer in 0..255, got {value!r}")
    return value


def remap_labels(
    table: np.ndarray, label_map: Mapping[object, object], *, num_classes: int, source: str
) -> np.ndarray:
    """``table`` with the entries of ``label_map`` (raw mask value -> class id or 255) set.

    Keys are raw mask values as stored in the files; each value must be a class id below
    ``num_classes`` or 255 (ignore), e.g. ``{11: 255}`` ignores CamVid's "void".
    """
    if not isinstance(label_map, Mapping):
        raise ValueError(
            f"{source}: label_map must be a mapping of raw mask value -> class id or 255, "
            f"e.g. {{11: 255}}; got {label_map!r}"
        )
    table = table.copy()
    for raw, target in label_map.items():
        key = _label_value(raw, what="label_map key (a raw mask value)", source=source)
        value = _label_value(target, what=f"label_map[{key}]", source=source)
        if value >= num_classes and value != IGNORE_INDEX:
            raise ValueError(
                f"{source}: label_map[{key}] = {value} is not a class of this "
                f"{num_classes}-class dataset; expected 0..{num_classes - 1} or "
                f"{IGNORE_INDEX} (ignore)"
            )
        table[key] = value
    return table


def _as_ranges(values: np.ndarray) -> str:
    """[0, 1, 2, 3, 255] -> "0..3, 255"."""
    parts, start = [], None
    for i, value in enumerate(values.tolist()):
        if start is None:
            start = value
        if i + 1 == len(values) or values[i + 1] != value + 1:
            parts.append(str(start) if start == value else f"{start}..{value}")
            start = None
    return ", ".join(parts)


def apply_label_map(
    raw: np.ndarray, table: np.ndarray, *, num_classes: int, path: str | Path
) -> np.ndarray:
    """Map raw mask values through ``table``; every result must be a class id or 255."""
    present = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
    mapped = table[present]
    bad = present[(mapped >= num_classes) & (mapped != IGNORE_INDEX)]
    if bad.size:
        valid = np.flatnonzero((table < num_classes) | (table == IGNORE_INDEX))
        raise DataError(
            f"{path}: mask values {_as_ranges(bad)} are not labels of this {num_classes}-class "
            f"dataset; expected only {_as_ranges(valid)}"
        )
    return table[raw]


#: Class 0 of a generated palette: the colour map's own first entry is black, which an
#: overlay cannot show over dark images; a 255 channel is in none of its first 256 colours.
GENERATED_CLASS_0 = [255, 160, 0]


def generated_palette(num_classes: int) -> list[list[int]]:
    """Distinct colours for classes without a palette: the bit-spreading VOC colour map,
    with orange (:data:`GENERATED_CLASS_0`) in place of its black for class 0."""
    palette = []
    for index in range(num_classes):
        rgb, value = [0, 0, 0], index
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << bit
            value >>= 3
        palette.append(rgb)
    if palette:
        palette[0] = list(GENERATED_CLASS_0)
    return palette


def _check_names(classes: object, *, source: str, written: Sequence[object] | None) -> list[str]:
    if not isinstance(classes, (list, tuple)) or not classes:
        raise ValueError(
            f"{source}: 'classes' must be a non-empty list of names, got {describe_value(classes)}"
        )
    first: dict[str, int] = {}
    for index, name in enumerate(classes):
        if not isinstance(name, str) or not name.strip():
            text = written[index] if written is not None and index < len(written) else None
            hint = text_hint(name, text if isinstance(text, str) else None)
            raise ValueError(
                f"{source}: classes[{index}] is {describe_value(name)}, not a class name"
                + (hint or "; give every class a non-empty name")
            )
        if name in first:
            raise ValueError(
                f"{source}: classes[{first[name]}] and classes[{index}] are both {name!r}; "
                "class names must differ (scores are reported by name)"
            )
        first[name] = index
    return list(classes)


def check_metadata(
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    *,
    source: str,
    written: Sequence[object] | None = None,
) -> tuple[list[str], list[list[int]]]:
    """Class names and palette as plain lists, checked against each other.

    Every name is a distinct non-empty string; ``written`` (the names as the YAML file
    wrote them) lets the error quote back a name YAML turned into a boolean or null.
    Raises ValueError naming ``source`` and the entry.
    """
    names = _check_names(classes, source=source, written=written)
    if len(names) > IGNORE_INDEX:
        raise ValueError(f"{source}: at most 255 classes fit in 8-bit masks, got {len(names)}")
    if len(palette) != len(names):
        raise ValueError(f"{source}: 'palette' has {len(palette)} colours for {len(names)} classes")
    colours = []
    for index, colour in enumerate(palette):
        if (
            not isinstance(colour, (list, tuple))
            or len(colour) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in colour)
            or not all(0 <= c <= 255 for c in colour)
        ):
            raise ValueError(
                f"{source}: palette[{index}] is {describe_value(colour)}; expected [r, g, b], "
                "three integers in 0..255"
            )
        colours.append([int(c) for c in colour])
    return names, colours
