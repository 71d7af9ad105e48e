"""PNG figures of the demo and the decoder study, in the spirit of the paper's Fig. 2.

The prediction grid needs only Pillow; the accuracy-vs-cost plot needs matplotlib (the
``plot`` extra), and :func:`pyplot` says how to install it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nrdseg.utils.optional import optional_import


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    matplotlib = optional_import("matplotlib", extra="plot")
    matplotlib.use("Agg")
    return optional_import("matplotlib.pyplot", extra="plot")


def png_bytes(fig: Any, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return buffer.getvalue()


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 colours; ignored (out-of-palette) pixels black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[np.asarray(labels, dtype=np.int64).clip(0, 255)]


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` px (scalable with FreeType, else the bitmap one)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def prediction_grid(
    rows: Sequence[Mapping[str, np.ndarray]],
    *,
    palette: Sequence[Sequence[int]],
    classes: Sequence[str],
    zoom: int = 2,
) -> bytes:
    """Fig. 2b as PNG bytes: one row per image, columns in the order of each row's keys.

    Each row maps a column title to an H x W x 3 uint8 image or an H x W label map
    (coloured with ``palette``), shown ``zoom`` times enlarged without smoothing; a legend
    under the grid names the class colours. Needs only Pillow, so the demo draws it on a
    plain install.
    """
    titles = list(rows[0])
    height, width = rows[0][titles[0]].shape[:2]
    cell_h, cell_w, gap, top = height * zoom, width * zoom, 6, 24
    font = _font(14)
    legend_h = 28
    canvas = Image.new(
        "RGB",
        (len(titles) * (cell_w + gap) + gap, top + len(rows) * (cell_h + gap) + legend_h),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(titles):
        left = gap + column * (cell_w + gap)
        draw.text((left + cell_w // 2, top // 2), title, fill="black", font=font, anchor="mm")
        for number, row in enumerate(rows):
            picture = row[title]
            shown = picture if picture.ndim == 3 else colorize(picture, palette)
            tile = Image.fromarray(np.ascontiguousarray(shown)).resize(
                (cell_w, cell_h), Image.Resampling.NEAREST
            )
            canvas.paste(tile, (left, top + number * (cell_h + gap)))
    x, y = gap, canvas.height - legend_h + 6
    for name, rgb in zip(classes, palette, strict=False):
        draw.rectangle((x, y, x + 14, y + 14), fill=tuple(int(c) for c in rgb), outline="black")
        draw.text((x + 20, y + 7), name, fill="black", font=font, anchor="lm")
        x += 34 + int(draw.textlength(name, font=font))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


#: Colours of the study plot's groups (``STUDY_MODELS``'s second field).
GROUP_COLOURS = {"NRD": "tab:red", "decoder": "tab:blue", "modern decoder": "tab:green"}


@dataclass(frozen=True)
class CostPoint:
    """One decoder in the accuracy-vs-cost plot: scores in %, spread as +- values."""

    label: str
    gmacs: float
    miou: float
    miou_spread: float
    trimap: float
    trimap_spread: float
    group: str


def label_heights(
    xs: Sequence[float], ys: Sequence[float], *, min_gap: float, x_near: float
) -> list[float]:
    """Heights for point labels so that no two labels overlap: a label whose point lies
    within ``x_near`` of another's (on the x axis as given: pass log10 for a log scale) is
    raised until it is ``min_gap`` above every label already placed there. Points are
    placed from the lowest up, so a lone point keeps its own height. Same units as ``ys``."""
    placed: list[tuple[float, float]] = []
    heights = [0.0] * len(ys)
    gap = min_gap * (1 - 1e-6)  # (h + min_gap) - h can round below min_gap
    for index in sorted(range(len(ys)), key=lambda i: ys[i]):
        height = ys[index]
        while clash := [
            h for x, h in placed if abs(x - xs[index]) < x_near and abs(h - height) < gap
        ]:
            height = max(clash) + min_gap
        placed.append((xs[index], height))
        heights[index] = height
    return heights


def study_figure(
    decoders: Sequence[CostPoint], variants: Sequence[CostPoint], *, trimap_width: int, title: str
) -> bytes:
    """Fig. 2a for the decoders (mIoU and trimap mIoU against decoder GMACs, log scale),
    and the NRD variants (Tables 2 and 4) as bars; error bars are the spread over seeds.
    Points are coloured by group: NRD, the paper's decoders, the modern ones."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), width_ratios=(1, 1, 1.2))
    panels = (("miou", "mIoU (%)"), ("trimap", f"trimap mIoU, {trimap_width} px (%)"))
    for ax, (key, ylabel) in zip(axes[:2], panels, strict=True):
        values = [getattr(point, key) for point in decoders]
        span = max(values) - min(values) if len(values) > 1 else 1.0
        heights = label_heights(
            [np.log10(max(p.gmacs, 1e-6)) for p in decoders], values,
            min_gap=0.055 * span, x_near=0.7,
        )  # fmt: skip
        for point, value, height in zip(decoders, values, heights, strict=True):
            colour = GROUP_COLOURS.get(point.group, "tab:gray")
            ax.errorbar(
                point.gmacs, value, yerr=getattr(point, f"{key}_spread"), fmt="o",
                color=colour, capsize=3,
                label=point.group if point.group in GROUP_COLOURS else None,
            )  # fmt: skip
            moved = height - value > 0.01 * span  # a leader line back to a raised label
            ax.annotate(
                point.label, (point.gmacs, value), xytext=(point.gmacs * 1.25, height),
                fontsize=8, color=colour, va="center",
                arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5} if moved else None,
            )  # fmt: skip
        ax.set_ylim(top=max(max(heights), max(values)) + 0.06 * span)
        ax.set_xscale("log")
        handles, labels = ax.get_legend_handles_labels()
        groups = dict(zip(labels, handles, strict=True))  # one legend entry per group
        ax.legend(groups.values(), groups.keys(), fontsize=8, loc="upper left")
        ax.set_xlabel("decoder GMACs (1024 x 2048, 19 classes, ResNet-50 widths)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax = axes[2]
    positions = np.arange(len(variants))
    for offset, (key, ylabel) in zip((-0.2, 0.2), panels, strict=True):
        ax.bar(
            positions + offset,
            [getattr(p, key) for p in variants],
            width=0.4,
            yerr=[getattr(p, f"{key}_spread") for p in variants],
            capsize=3,
            label=ylabel,
        )
    ax.set_xticks(positions, [p.label for p in variants], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("%")
    ax.set_title("NRD variants (Tables 2 and 4)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return png_bytes(fig)
