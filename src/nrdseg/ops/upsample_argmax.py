"""Labels from low-resolution logits without ever holding full-resolution float logits.

Bilinear upsampling (align_corners=False) by an integer power-of-two factor f maps output
row r to source position (r + 0.5) / f - 0.5, computed exactly in floating point. A band
of source rows [a, b) therefore owns output rows [a*f, b*f), and those rows read only
source rows a-1 .. b. Upsampling the slice [a-1, b+1) to f times its height puts the
same numbers, computed the same way, on those output rows as upsampling the whole map,
so the argmax is bit-identical while only one band of float logits exists at a time.
A binary model's single channel is thresholded (``logit > 0``) instead, band by band too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nrdseg.ops.labels import label_classes, logits_to_labels

#: Default size of one band of upsampled float logits.
DEFAULT_BAND_BYTES = 16 * 2**20


def label_dtype(num_classes: int) -> torch.dtype:
    """The smallest integer type for the labels of a ``num_classes``-channel model
    (uint8 keeps 255 for ignore)."""
    if label_classes(num_classes) <= 255:
        return torch.uint8
    if num_classes <= torch.iinfo(torch.int16).max:
        return torch.int16
    return torch.int32


def _band_exact(size_in: int, size_out: int) -> bool:
    """Bands are exact when the factor is an integer power of two (exact float scale)."""
    factor, rest = divmod(size_out, size_in)
    return rest == 0 and factor >= 1 and factor & (factor - 1) == 0


def upsample_argmax(
    logits: torch.Tensor,
    *,
    size: Sequence[int],
    crop: Sequence[int] | None = None,
    max_band_bytes: int = DEFAULT_BAND_BYTES,
) -> torch.Tensor:
    """argmax over classes of ``logits`` (B, C, h, w) bilinearly resized to ``size``.

    Returns (B, crop_h, crop_w) labels of :func:`label_dtype`, equal to
    ``F.interpolate(logits, size, mode="bilinear")[..., :crop_h, :crop_w].argmax(1)``, or
    for one channel (a binary model) to ``... [:, 0] > 0`` (see :mod:`nrdseg.ops.labels`).
    Heights that are not a power-of-two multiple of h fall back to one whole-map band.
    """
    batch, classes, height, width = logits.shape
    out_h, out_w = (int(v) for v in size)
    crop_h, crop_w = (int(v) for v in (crop if crop is not None else size))
    if not (0 < crop_h <= out_h and 0 < crop_w <= out_w):
        raise ValueError(
            f"crop {(crop_h, crop_w)} must be positive and within size {(out_h, out_w)}"
        )
    labels = torch.empty(batch, crop_h, crop_w, dtype=label_dtype(classes), device=logits.device)
    if (height, width) == (out_h, out_w):
        labels.copy_(logits_to_labels(logits[..., :crop_h, :crop_w]))
        return labels
    if not _band_exact(height, out_h):
        full = F.interpolate(logits, size=(out_h, out_w), mode="bilinear", align_corners=False)
        labels.copy_(logits_to_labels(full[..., :crop_h, :crop_w]))
        return labels
    factor = out_h // height
    row_bytes = batch * classes * factor * out_w * logits.element_size()
    rows = max(1, max_band_bytes // row_bytes)
    needed = -(-crop_h // factor)  # source rows whose output rows start inside the crop
    for start in range(0, needed, rows):
        stop = min(start + rows, needed)
        lo, hi = max(start - 1, 0), min(stop + 1, height)
        band = F.interpolate(
            logits[:, :, lo:hi],
            size=((hi - lo) * factor, out_w),
            mode="bilinear",
            align_corners=False,
        )
        first, last = start * factor, min(stop * factor, crop_h)
        offset = first - lo * factor
        labels[:, first:last] = logits_to_labels(
            band[:, :, offset : offset + last - first, :crop_w]
        )
        del band  # else the next band is allocated while this one is still referenced
    return labels
