"""An evaluation result for people and programs: plain JSON (summary scores, IoU by class
name, trimap mIoU) and the printed per-class table."""

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


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}"


def metrics_table(result: dict[str, Any]) -> str:
    """Per-class IoU / Acc and the summary scores in percent ("-" where undefined)."""
    ious, accs = result["IoU"], result["Acc"]
    names = result.get("classes") or [str(i) for i in range(len(ious))]
    rows = [(str(n), _percent(i), _percent(a)) for n, i, a in zip(names, ious, accs, strict=True)]
    summary = [("mIoU", _percent(result["mIoU"])), ("mAcc", _percent(result["mAcc"]))]
    summary.append(("aAcc", _percent(result["aAcc"])))
    summary += [(f"trimap {w}px mIoU", _percent(v)) for w, v in result["trimap"].items()]
    width = max(len(name) for name, *_ in rows + summary + [("class",)])
    lines = [f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}"]
    lines += [f"{name:<{width}}  {iou:>6}  {acc:>6}" for name, iou, acc in rows]
    lines.append("-" * (width + 16))
    lines += [f"{name:<{width}}  {value:>6}" for name, value in summary]
    absent = [str(n) for n, a in zip(names, accs, strict=True) if math.isnan(a)]
    if absent:  # a class missing from the labels is a data problem more often than not
        lines.append(
            f"no ground-truth pixels of {', '.join(absent)}: Acc '-', IoU '-' unless "
            "predicted; `nrdseg data check` counts the labels"
        )
    return "\n".join(lines)
