"""DySample decoders: learned-sampling upsampling of the encoder output to stride 4.

DySample (Liu, Lu, Fu, Cao, ICCV 2023, "Learning to Upsample by Learning to Sample";
:class:`nrdseg.models.dysample.DySample`) replaces bilinear upsampling with bilinear
*sampling* at learned points. Its paper's semantic segmentation experiment (SegFormer-B1
on ADE20K, its Fig. 1 and upsampler comparison; 41.7 mIoU with bilinear, one run per
upsampler) reports about +1.6 to +1.9 mIoU for a few thousand parameters. Two rows use
it here:

- :class:`DySampleHead` (``dysample_r50``): neck -> DySample to stride 4 -> classifier,
  no guidance map: the learned counterpart of the bilinear and coordinate-only NRD rows.
- :class:`DeepLabV3PlusDySampleHead` (``dlv3p_dysample_r50``): the DeepLabV3+ decoder with
  DySample in place of its x8 bilinear upsampling of the neck.

Upsampling from stride 32 to 4 is x8. Both heads default to three x2 DySample steps
(``upsample_scales=(2, 2, 2)``; ``(8,)`` is one x8 step, ``(2, 4)`` etc. also work):

- the papers' shared protocol (SegFormer-B1, ADE20K) swaps each bilinear resize for x2
  operators, and the zoo's CARAFE row cascades x2 stages too, so rows compare alike;
- the static scope 0.25 is the paper's bound between overlapping and non-overlapping
  sampling points for x2, whose sub-pixel points sit half a low-resolution pixel apart;
  at x8 they sit 1/8 apart and the same scope lets each point cross its neighbours;
- each step predicts its offsets from the map the previous one rearranged, and at x8 the
  "pl" style would leave C/64 channels (8 of the neck's 512) to predict each offset.
The cost is small either way (0.35 GMACs of sampling at 1024x2048 for three steps
against 0.27 for one). One difference at the start: a fresh cascade is three bilinear x2
steps, a wider and smoother filter than one bilinear x8, so ``dlv3p_dysample_r50``
starts near, not at, DeepLabV3+; ``upsample_scales=(8,), style="lp"`` starts exactly
there (tests/models/test_dysample.py). Other defaults: the "pl" style, which the paper
finds better than "lp" for semantic segmentation, with the dynamic scope and 4 groups:
DySample-S+, the variant FreqFusion's paper compares against (43.3 mIoU on SegFormer-B1).

Where this differs from the official code: the sampling grid is built without its 5-D
pixel shuffle (which broke ONNX export until 2023-12), with the same result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from nrdseg.models.blocks import init_classifier
from nrdseg.models.dysample import dysample_cascade
from nrdseg.models.heads.base import DecodeHead
from nrdseg.models.heads.deeplabv3plus import DeepLabV3PlusHead
from nrdseg.models.shapes import NECK, ShapeSpec

_UPSAMPLER_INIT = {
    "upsampler": "DySample's: offset convs normal(0, 0.001) with bias 0, scope convs zero"
}


class _StrideChecked:
    """``from_shapes`` that checks ``upsample_scales`` against the encoder's strides."""

    @classmethod
    def from_shapes(
        cls, shapes: Mapping[str, ShapeSpec], *, num_classes: int, **options: Any
    ) -> DecodeHead:
        """As :meth:`DecodeHead.from_shapes`; ``ValueError`` when ``upsample_scales`` do not
        multiply to the stride ratio of the neck to the stride-4 map."""
        cls.check_option_values(options)
        scales = tuple(options.get("upsample_scales", cls.options()["upsample_scales"].default))
        if NECK in shapes and "stride4" in shapes:
            ratio = shapes[NECK].stride // shapes["stride4"].stride
            if math.prod(scales) != ratio:
                raise ValueError(
                    f"{cls.__name__}: upsample_scales {list(scales)} upsample "
                    f"x{math.prod(scales)}, but this encoder's neck (stride "
                    f"{shapes[NECK].stride}) is x{ratio} coarser than its stride4 map; "
                    f"set upsample_scales to factors of {ratio} (e.g. [{ratio}])"
                )
        return super().from_shapes(shapes, num_classes=num_classes, **options)


class DySampleHead(_StrideChecked, DecodeHead):
    """Neck (B, C, H, W) -> DySample steps -> dropout -> 1x1 classifier, at stride 4.

    Output (B, num_classes, 8H, 8W) with the default x2 x2 x2. No conv between the
    steps: what DySample learns is where to read, not new features.
    """

    own_init: ClassVar[dict[str, str]] = _UPSAMPLER_INIT

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        upsample_scales: tuple[int, ...] = (2, 2, 2),
        groups: int = 4,
        style: Literal["lp", "pl"] = "pl",
        dynamic_scope: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.upsampler = dysample_cascade(
            in_channels,
            scales=tuple(upsample_scales),
            groups=groups,
            style=style,
            dynamic_scope=dynamic_scope,
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = init_classifier(nn.Conv2d(in_channels, num_classes, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.upsampler(x)))


class DeepLabV3PlusDySampleHead(_StrideChecked, DeepLabV3PlusHead):
    """:class:`DeepLabV3PlusHead` whose x8 upsampling of the neck is DySample's.

    Same inputs, widths and fuse layers as DeepLabV3+ (the parent's state_dict keys plus
    ``upsampler.*``); only :meth:`upsample` differs.
    """

    own_init: ClassVar[dict[str, str]] = _UPSAMPLER_INIT

    def __init__(
        self,
        *,
        in_channels: int,
        low_level_channels: int,
        num_classes: int,
        low_level_reduced: int = 48,
        channels: int = 512,
        dropout: float = 0.1,
        upsample_scales: tuple[int, ...] = (2, 2, 2),
        groups: int = 4,
        style: Literal["lp", "pl"] = "pl",
        dynamic_scope: bool = True,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            low_level_channels=low_level_channels,
            num_classes=num_classes,
            low_level_reduced=low_level_reduced,
            channels=channels,
            dropout=dropout,
        )
        self.upsampler = dysample_cascade(
            in_channels,
            scales=tuple(upsample_scales),
            groups=groups,
            style=style,
            dynamic_scope=dynamic_scope,
        )

    def upsample(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """DySample steps; ``size`` is the low-level map's, which they reach by construction."""
        return self.upsampler(x)
