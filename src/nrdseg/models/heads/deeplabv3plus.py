"""DeepLabV3+ decoder: fuse upsampled encoder features with stride-4 features."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from nrdseg.models.blocks import ConvBNReLU, SeparableConvBNReLU, init_classifier
from nrdseg.models.heads.base import DecodeHead
from nrdseg.ops.resize import resize


class DeepLabV3PlusHead(DecodeHead):
    """1x1 48-channel reduction of the low-level map, concat, two separable 3x3 convs, 1x1."""

    inputs: ClassVar[dict[str, str]] = {"in_channels": "neck", "low_level_channels": "stride4"}
    width_options = ("channels",)

    def __init__(
        self,
        *,
        in_channels: int,
        low_level_channels: int,
        num_classes: int,
        low_level_reduced: int = 48,
        channels: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.low_level = ConvBNReLU(low_level_channels, low_level_reduced, kernel_size=1)
        self.fuse = nn.Sequential(
            SeparableConvBNReLU(in_channels + low_level_reduced, channels),
            SeparableConvBNReLU(channels, channels),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = init_classifier(nn.Conv2d(channels, num_classes, kernel_size=1))

    def forward(self, x: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        low = self.low_level(low_level)
        x = torch.cat([resize(x, low.shape[-2:]), low], dim=1)
        return self.classifier(self.dropout(self.fuse(x)))
