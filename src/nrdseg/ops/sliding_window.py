"""Sliding-window geometry: where the windows of a slide inference start, and which
crop and stride settings cover every pixel."""

from __future__ import annotations

from collections.abc import Sequence


def _pair(value: Sequence[int] | None, name: str) -> tuple[int, int]:
    if value is None:
        raise ValueError(f"mode='slide' needs {name} as (height, width)")
    pair = tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{name} must be two positive ints (height, width), got {value!r}")
    return pair  # type: ignore[return-value]


def slide_settings(
    crop_size: Sequence[int] | None, stride: Sequence[int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(crop_size, stride)`` checked alone and together, as (height, width) pairs.

    A stride wider than the crop leaves pixels between two windows that no window
    covers (their logits would be 0 / 0), at some image size and so at some TTA scale;
    a stride up to the crop covers every pixel at every size. Errors start with the key.
    """
    crop, step = _pair(crop_size, "crop_size"), _pair(stride, "stride")
    wider = [axis for axis, c, s in zip(("height", "width"), crop, step, strict=True) if s > c]
    if wider:
        raise ValueError(
            f"stride: {list(step)} is larger than crop_size {list(crop)} in "
            f"{' and '.join(wider)}, so the windows would leave pixels uncovered; "
            "use a stride of at most crop_size (H, W)"
        )
    return crop, step


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis; the last one is shifted inward.

    Windows start every ``stride`` pixels; the one that would cross the border is moved
    back to end at it, so every window lies inside the image (or is the whole axis when
    the image is smaller than the crop).
    """
    count = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride, size - crop), 0) for i in range(count)]
