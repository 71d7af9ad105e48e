"""Label images: palette PNGs whose pixel values are class ids, and image + mask blends."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nrdseg.data.labels import generated_palette


def model_palette(meta: dict[str, Any], num_classes: int) -> list[list[int]]:
    """The dataset palette of ``model.meta`` if it covers every class, else a generated one."""
    palette = meta.get("palette")
    if palette and len(palette) >= num_classes:
        return [[int(c) for c in rgb] for rgb in palette[:num_classes]]
    return generated_palette(num_classes)


def label_png(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> bytes:
    """PNG bytes of an (H, W) label map: palette mode up to 256 classes, else 16-bit gray.

    Either way the stored pixel values are the class ids; the palette only colours them.
    """
    if len(palette) <= 256:
        image = Image.fromarray(labels.astype(np.uint8))  # "L"; putpalette makes it "P"
        image.putpalette([int(c) for rgb in palette for c in rgb])
    else:
        image = Image.fromarray(labels.astype(np.uint16))
    return _png(image)


def gray_png(values: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) map of values 0-255 as plain 8-bit grayscale ("L")."""
    return _png(Image.fromarray(values.astype(np.uint8)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


#: Weight of the label colours in an overlay. 0.5 let regions whose colour is close to
#: the image's vanish (CamVid's grey sky over a grey sky); 0.6 keeps the image readable.
OVERLAY_ALPHA = 0.6

_LEGEND_PAD = 4
_SWATCH = 12


def overlay_png(
    image: np.ndarray,
    labels: np.ndarray,
    palette: Sequence[Sequence[int]],
    *,
    alpha: float = OVERLAY_ALPHA,
    classes: Sequence[str] | None = None,
    legend: bool = True,
) -> bytes:
    """PNG bytes of the RGB image blended with the coloured labels, ``alpha`` the colours'
    weight, and below it a legend strip naming the classes present (most pixels first).
    An image narrower than the widest legend entry gets a white margin on its right, so
    that every name is shown whole.

    ``image`` uint8 (H, W, 3), ``labels`` int (H, W) class ids; ``classes`` the names
    (default "class i"). Raises ValueError for ``alpha`` outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colors = np.asarray(palette, dtype=np.float32)[labels]
    blend = np.rint((1.0 - alpha) * image.astype(np.float32) + alpha * colors).astype(np.uint8)
    if legend:
        counts = np.bincount(labels.ravel(), minlength=len(palette))
        present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
        names = [classes[i] if classes and i < len(classes) else f"class {i}" for i in present]
        strip = legend_strip(blend.shape[1], names, [palette[i] for i in present])
        margin = np.full((blend.shape[0], strip.shape[1] - blend.shape[1], 3), 255, np.uint8)
        blend = np.concatenate([np.concatenate([blend, margin], axis=1), strip], axis=0)
    return _png(Image.fromarray(blend))


def legend_strip(width: int, names: Sequence[str], colors: Sequence[Sequence[int]]) -> np.ndarray:
    """uint8 (h, w, 3): a white strip of colour swatches with their names, in rows wrapped
    to ``width``; ``w`` is ``width``, or wider where one entry needs more."""
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = max(_SWATCH, *(measure.textbbox((0, 0), n, font=font)[3] for n in names or ["x"]))
    line += _LEGEND_PAD
    items = [
        _SWATCH + _LEGEND_PAD + int(measure.textlength(name, font=font) + 1) + 2 * _LEGEND_PAD
        for name in names
    ]
    width = max(width, _LEGEND_PAD + max(items, default=0))
    places, x, y = [], _LEGEND_PAD, _LEGEND_PAD
    for item in items:
        if x > _LEGEND_PAD and x + item > width:  # wrap
            x, y = _LEGEND_PAD, y + line
        places.append((x, y))
        x += item
    strip = Image.new("RGB", (width, y + line + (_LEGEND_PAD if names else 0)), "white")
    draw = ImageDraw.Draw(strip)
    for (x, y), name, rgb in zip(places, names, colors, strict=True):
        swatch = (x, y, x + _SWATCH - 1, y + _SWATCH - 1)
        draw.rectangle(swatch, fill=tuple(int(c) for c in rgb), outline="black")
        draw.text((x + _SWATCH + _LEGEND_PAD, y), name, fill="black", font=font)
    return np.asarray(strip)
