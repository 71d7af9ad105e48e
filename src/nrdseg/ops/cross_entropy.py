"""Pixel-wise cross-entropy with mmseg's choice of denominator (``avg_non_ignore``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nrdseg.ops.labels import IGNORE_INDEX, two_class_logits


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    avg_non_ignore: bool = False,
    class_weight: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean per-pixel cross-entropy; ``ignore_index`` pixels add 0 to the sum.

    ``logits`` float (B, C, H, W), ``target`` int64 (B, H, W) at the same size; computed
    in float32 whatever the logits' dtype. The denominator is mmseg's ``avg_non_ignore``:

    - ``False`` (mmseg 0.x, the authors' code, mmseg 1.x's default): all B*H*W pixels,
      ignored ones included, so a crop that is half ignored gives half the gradient;
    - ``True`` (PyTorch's ``F.cross_entropy``): the non-ignored pixels only; a crop with
      no labelled pixel gives 0, not 0 / 0.

    As in mmseg, ``class_weight`` (float (C,)) scales each pixel's loss by its label's
    weight and ``weight`` (float (B, H, W), e.g. the OHEM sampler's 0/1 mask) by its own,
    neither entering the denominator (``F.cross_entropy``'s weighted mean divides by the
    summed class weights instead).

    One channel (C = 1, a binary model, labels 0/1) gives the binary cross-entropy of
    ``sigmoid(logit)`` (``F.binary_cross_entropy_with_logits``): the softmax cross-entropy
    of the two-class logits ``(0, logit)``, so ``class_weight`` then holds 2 numbers
    (background, class 1). A softmax over one channel would be constant, its loss 0.
    """
    logits = two_class_logits(logits)
    if class_weight is not None:
        class_weight = class_weight.to(device=logits.device, dtype=torch.float32)
    pixels = F.cross_entropy(
        logits.float(), target, weight=class_weight, ignore_index=ignore_index, reduction="none"
    )
    if weight is not None:
        pixels = pixels * weight
    if avg_non_ignore:
        return pixels.sum() / (target != ignore_index).sum().clamp_min(1)
    return pixels.mean()
