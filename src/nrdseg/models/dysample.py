"""DySample, the upsampler that learns where to sample (Liu, Lu, Fu, Cao, ICCV 2023).

"Learning to Upsample by Learning to Sample" (tiny-smart/dysample, MIT): a 1x1 conv
predicts, per channel group, where each of the s x s output pixels of a cell reads the
input; :func:`nrdseg.ops.dysample.dysample` then samples there bilinearly. With zero
offsets it is bilinear upsampling. The paper's semantic segmentation experiment
(SegFormer-B1, ADE20K; its Fig. 1 and upsampler comparison, one run per upsampler, 41.7
mIoU with bilinear) reports about +1.6 to +1.9 mIoU, with a few thousand parameters and
a fraction of a GFLOP; the FreqFusion paper's upsampler comparison on that setting puts
DySample's best variant, DySample-S+, at 43.3.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.ops.dysample import dysample

#: The paper's variants: "lp" (DySample, DySample+) and "pl" (DySample-S, DySample-S+).
STYLES = ("lp", "pl")
#: The static scope factor: offsets stay within a quarter of a low-resolution pixel.
STATIC_SCOPE = 0.25
#: The dynamic scope: ``DYNAMIC_SCOPE * sigmoid(.)`` ranges over [0, 0.5], 0.25 at start.
DYNAMIC_SCOPE = 0.5


class DySample(nn.Module):
    """Upsample (B, C, H, W) -> (B, C, s*H, s*W) by learned, content-aware sampling.

    Offsets, in low-resolution pixels, are a 1x1 conv of the input times the scope: the
    static 0.25, or (``dynamic_scope``, the paper's "+" variants) 0.5 * sigmoid of a
    second, zero-initialised 1x1 conv, which starts at the same 0.25. The offset conv
    starts as normal(0, 0.001) with bias 0, so a fresh DySample is bilinear upsampling
    up to offsets of about 1e-3 pixels.

    ``style`` says where the offsets come from: "lp" (linear, then pixel shuffle) maps
    each low-resolution pixel to its 2*g*s^2 offsets; "pl" pixel-shuffles the input to
    (C/s^2, sH, sW) first and predicts each high-resolution pixel's 2*g offsets there,
    with s^4 fewer weights (the paper finds it better for semantic segmentation and
    slightly worse on its other tasks). ``groups`` channel groups each get their own
    sampling points.

    Raises ``ValueError`` for an unknown style, a scale below 2, C not divisible by
    ``groups`` or, for "pl", by s^2.
    """

    def __init__(
        self,
        channels: int,
        *,
        scale: int = 2,
        groups: int = 4,
        style: Literal["lp", "pl"] = "lp",
        dynamic_scope: bool = False,
    ) -> None:
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"DySample style must be one of {STYLES}, got {style!r}")
        if scale < 2:
            raise ValueError(f"DySample upsamples: scale must be an integer >= 2, got {scale}")
        if groups < 1 or channels % groups:
            raise ValueError(f"DySample groups={groups} must divide the {channels} input channels")
        if style == "pl" and channels % scale**2:
            raise ValueError(
                f'DySample style "pl" pixel-shuffles {channels} channels by {scale}: they '
                f"must be a multiple of scale^2 = {scale**2}; use style='lp'"
            )
        self.scale, self.groups, self.style = scale, groups, style
        conv_in = channels // scale**2 if style == "pl" else channels
        conv_out = 2 * groups if style == "pl" else 2 * groups * scale**2
        self.offset = nn.Conv2d(conv_in, conv_out, kernel_size=1)
        nn.init.normal_(self.offset.weight, std=1e-3)
        nn.init.zeros_(self.offset.bias)
        self.scope: nn.Conv2d | None = None
        if dynamic_scope:
            self.scope = nn.Conv2d(conv_in, conv_out, kernel_size=1, bias=False)
            nn.init.zeros_(self.scope.weight)

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2*g*s^2, H, W) offsets in low-resolution pixels, before the fixed positions."""
        source = F.pixel_shuffle(x, self.scale) if self.style == "pl" else x
        offsets = self.offset(source)
        if self.scope is None:
            offsets = offsets * STATIC_SCOPE
        else:
            offsets = offsets * (DYNAMIC_SCOPE * self.scope(source).sigmoid())
        return F.pixel_unshuffle(offsets, self.scale) if self.style == "pl" else offsets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dysample(x, self.offsets(x), scale=self.scale, groups=self.groups)


def dysample_cascade(
    channels: int,
    *,
    scales: tuple[int, ...],
    groups: int,
    style: Literal["lp", "pl"],
    dynamic_scope: bool,
) -> nn.Sequential:
    """One DySample per factor of ``scales`` (``(2, 2, 2)``: three x2 steps, ``(8,)``: one
    x8 step), each predicting its offsets from the map the step before produced.

    Raises ``ValueError`` for no scales, and as :class:`DySample`.
    """
    if not scales:
        raise ValueError("a DySample cascade needs at least one scale, e.g. (2, 2, 2)")
    return nn.Sequential(
        *(
            DySample(channels, scale=s, groups=groups, style=style, dynamic_scope=dynamic_scope)
            for s in scales
        )
    )
