"""The decoder FADE and SAPA share: guided x2 steps from the neck to stride 4, FPN style."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from nrdseg.models.blocks import ConvBNReLU, init_classifier
from nrdseg.models.heads.base import DecodeHead
from nrdseg.models.shapes import NECK, ShapeSpec


class GuidedFPNHead(DecodeHead):
    """FPN's top-down path with a guided x2 upsampler per step, then a 1x1 classifier.

    The neck (stride 32) and the backbone's stride-16, -8 and -4 maps are each projected
    to ``channels`` by a 1x1 conv + BN + ReLU (FPN's laterals). Each step upsamples the
    running map x2 with ``upsamplers[i](x, lateral)``, guided by the lateral of the target
    stride, and adds that lateral: ``x = up(x, lateral) + lateral``, the sum of FPN's
    top-down path, kept when an upsampler replaces FPN's resize (as in the UPerNet
    experiments of the FADE paper; its SegFormer experiments concatenate the levels
    instead, a head nrdseg has as its own row). UPerNet's 3x3 smoothing convs and its
    concatenation of all levels are left out: at stride 4 a 3x3 conv alone would cost ~77 GMACs at 1024x2048 and
    256 channels (the DeepLabV3+ decoder's whole budget), and the upsampler is what
    these rows compare. Dropout, then the classifier at stride 4.

    Subclasses pass ``upsampler``, which builds one upsampler per step: a module taking
    ``(x (B, C, H, W), lateral (B, C, 2H, 2W))`` and returning (B, C, 2H, 2W).
    """

    inputs: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "in_channels": NECK,
        "lateral_channels": ("stride16", "stride8", "stride4"),
    }
    width_options = ("channels",)

    def __init__(
        self,
        *,
        in_channels: int,
        lateral_channels: Sequence[int],
        num_classes: int,
        channels: int,
        dropout: float,
        upsampler: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.top = ConvBNReLU(in_channels, channels, kernel_size=1)
        self.laterals = nn.ModuleList(ConvBNReLU(c, channels) for c in lateral_channels)
        self.upsamplers = nn.ModuleList(upsampler() for _ in lateral_channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = init_classifier(nn.Conv2d(channels, num_classes, kernel_size=1))

    @classmethod
    def from_shapes(
        cls, shapes: Mapping[str, ShapeSpec], *, num_classes: int, **options: Any
    ) -> DecodeHead:
        """As :meth:`DecodeHead.from_shapes`; raises ``ValueError`` unless each map this
        head reads sits at half the stride of the one before (x2 steps): a dilated
        encoder (``output_stride`` 8 or 16) does not fit."""
        found = [(n, shapes[n].stride) for n in cls.in_features if n in shapes]
        if any(deep != 2 * shallow for (_, deep), (_, shallow) in itertools.pairwise(found)):
            given = ", ".join(f"{n} at stride {s}" for n, s in found)
            raise ValueError(
                f"{cls.__name__} upsamples x2 from each map to the next, so each must sit at "
                f"half the stride of the one before; this encoder gives {given}: use "
                "output_stride=32"
            )
        return super().from_shapes(shapes, num_classes=num_classes, **options)

    def forward(self, x: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        x = self.top(x)
        for project, upsample, feature in zip(
            self.laterals, self.upsamplers, features, strict=True
        ):
            lateral = project(feature)
            x = upsample(x, lateral) + lateral
        return self.classifier(self.dropout(x))
