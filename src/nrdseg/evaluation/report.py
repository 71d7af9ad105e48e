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
        **{
            key: {str(n): _number(v) for n, v in zip(names, result[key], strict=True)}
            for key in ("label_fraction", "pred_fraction")
            if key in result
        },
        "trimap": {str(w): _number(v) for w, v in result.get("trimap", {}).items()},
        # The samples left out (on_error: skip), each error naming its file.
        **({"skipped": list(result["skipped"])} if result.get("skipped") else {}),
    }


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}"


def metrics_table(result: dict[str, Any]) -> str:
    """Per-class IoU / Acc (and, when the result has them, the shares of the labelled
    pixels each class labels and is predicted on) and the summary scores, in percent ("-"
    where undefined)."""
    ious, accs = result["IoU"], result["Acc"]
    names = result.get("classes") or [str(i) for i in range(len(ious))]
    headers = ["IoU", "Acc"]
    columns = [ious, accs]
    if "pred_fraction" in result:
        headers += ["label%", "pred%"]
        columns += [result["label_fraction"], result["pred_fraction"]]
    rows = [
        (str(name), *(_percent(value) for value in values))
        for name, *values in zip(names, *columns, strict=True)
    ]
    summary = [("mIoU", _percent(result["mIoU"])), ("mAcc", _percent(result["mAcc"]))]
    summary.append(("aAcc", _percent(result["aAcc"])))
    summary += [(f"trimap {w}px mIoU", _percent(v)) for w, v in result["trimap"].items()]
    width = max(len(name) for name, *_ in rows + summary + [("class",)])
    lines = [f"{'class':<{width}}" + "".join(f"  {h:>6}" for h in headers)]
    lines += [f"{name:<{width}}" + "".join(f"  {v:>6}" for v in values) for name, *values in rows]
    lines.append("-" * (width + 8 * len(headers)))
    lines += [f"{name:<{width}}  {value:>6}" for name, value in summary]
    absent = [str(n) for n, a in zip(names, accs, strict=True) if math.isnan(a)]
    if absent:  # a class missing from the labels is a data problem more often than not
        lines.append(
            f"no ground-truth pixels of {', '.join(absent)}: Acc '-', IoU '-' unless "
            "predicted; `nrdseg data check` counts the labels"
        )
    return "\n".join(lines)
