"""An evaluation result as plain JSON: summary scores, IoU by class name, trimap mIoU."""

from __future__ import annotations

import math
from typing import Any


def _number(value: float) -> float | None:
    """Fractions rounded for reading; undefined (NaN) scores become null."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def result_summary(result: dict[str, Any]) -> dict[str, Any]:
    """``evaluate()``'s result -> ``{"mIoU", "mAcc", "aAcc", "IoU": {class: v}, "trimap"}``,
    plus ``skipped`` (error messages) when samples were left out."""
    names = result.get("classes") or [str(i) for i in range(len(result["IoU"]))]
    return {
        "mIoU": _number(result["mIoU"]),
        "mAcc": _number(result["mAcc"]),
        "aAcc": _number(result["aAcc"]),
        "IoU": {str(n): _number(v) for n, v in zip(names, result["IoU"], strict=True)},
        "trimap": {str(w): _number(v) for w, v in result.get("trimap", {}).items()},
        # The samples left out (on_error: skip), each error naming its file.
        **({"skipped": list(result["skipped"])} if result.get("skipped") else {}),
    }
