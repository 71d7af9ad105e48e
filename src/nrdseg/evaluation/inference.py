"""Test-time inference modes: whole image, sliding window, multi-scale + flip TTA.

Conventions follow mmseg: a sliding window averages the *logits* of the windows covering
each pixel; test-time augmentation averages *softmax probabilities* over the views (a
binary model's sigmoid probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrdseg.ops.labels import two_class_logits
from nrdseg.ops.resize import resize
from nrdseg.ops.sliding_window import slide_settings, window_starts

MODES = ("whole", "slide")


def check_mode(
    mode: str, crop_size: Sequence[int] | None, stride: Sequence[int] | None
) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """``(crop_size, stride)`` checked for ``mode``: pairs for "slide", None for "whole".

    ValueError for an unknown mode, settings :func:`slide_settings` refuses, or a crop or
    stride given with mode "whole" (where it would be ignored).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "slide":
        return slide_settings(crop_size, stride)
    if crop_size is not None or stride is not None:
        raise ValueError("crop_size and stride are used only with mode='slide'")
    return None, None


def slide_logits(
    model: nn.Module, image: torch.Tensor, *, crop_size: tuple[int, int], stride: tuple[int, int]
) -> torch.Tensor:
    """Logits of every window, summed into place and divided by the per-pixel count.

    Raises ValueError (see :func:`slide_settings`) for settings that would leave a pixel
    without a window, instead of returning NaN logits there.
    """
    height, width = image.shape[-2:]
    (crop_h, crop_w), (stride_h, stride_w) = slide_settings(crop_size, stride)
    total: torch.Tensor | None = None
    count = image.new_zeros(height, width)
    for top in window_starts(height, crop_h, stride_h):
        for left in window_starts(width, crop_w, stride_w):
            bottom, right = min(top + crop_h, height), min(left + crop_w, width)
            logits = model(image[..., top:bottom, left:right])
            if total is None:
                total = logits.new_zeros(*logits.shape[:2], height, width)
            total[..., top:bottom, left:right] += logits
            count[top:bottom, left:right] += 1
    assert total is not None  # window_starts always yields at least one window
    return total / count


def infer_logits(
    model: nn.Module,
    image: torch.Tensor,
    *,
    mode: str = "whole",
    crop_size: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> torch.Tensor:
    """Logits (B, C, H, W) for normalized images (B, 3, H, W), in eval mode without grad.

    ``mode`` "whole" runs the model on each (rescaled) image at once (any size: the model
    pads to /32 inside); "slide" runs ``crop_size`` windows every ``stride`` pixels.
    With one view (``scales == (1.0,)``, no flip) the model's own logits are returned.
    With several (each scale: image resized bilinearly, prediction resized back to
    H x W; ``flip``: also the mirrored image, prediction mirrored back) the result is
    the log of the mean softmax probability, so ``softmax(result)`` is the TTA average.
    A binary model's one channel (C = 1) averages the sigmoid instead and returns the
    logit of the mean, so ``sigmoid(result)`` is the TTA average (and ``result > 0`` its
    class-1 decision).
    """
    crop_size, stride = check_mode(mode, crop_size, stride)
    scales = tuple(float(s) for s in scales)
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales}")
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a 4-D tensor (B, 3, H, W), got {shape}")

    height, width = image.shape[-2:]

    def run(view: torch.Tensor) -> torch.Tensor:
        if mode == "slide":
            return slide_logits(model, view, crop_size=crop_size, stride=stride)
        return model(view)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if scales == (1.0,) and not flip:
                return run(image)
            probs = None
            for scale in scales:
                size = (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))
                scaled = resize(image, size)
                views = [(scaled, False), (scaled.flip(-1), True)] if flip else [(scaled, False)]
                for view, flipped in views:
                    logits = run(view)
                    if flipped:
                        logits = logits.flip(-1)
                    p = two_class_logits(resize(logits, (height, width)).float()).softmax(dim=1)
                    probs = p if probs is None else probs + p
            mean = probs / (len(scales) * (2 if flip else 1))
            log_mean = mean.clamp_min(torch.finfo(mean.dtype).tiny).log()
            if logits.shape[1] == 1:  # the logit of the mean sigmoid: log p1 - log p0
                return log_mean[:, 1:] - log_mean[:, :1]
            return log_mean
    finally:
        model.train(was_training)
