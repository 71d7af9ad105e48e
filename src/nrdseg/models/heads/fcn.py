"""Auxiliary FCN head on the stride-16 features, used for the training loss only."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from nrdseg.models.blocks import ConvBNReLU, init_classifier
from nrdseg.models.heads.base import DecodeHead


class FCNHead(DecodeHead):
    """3x3 conv + BN + ReLU, dropout, 1x1 classifier (mmseg's auxiliary FCNHead)."""

    inputs: ClassVar[dict[str, str]] = {"in_channels": "stride16"}

    def __init__(
        self, *, in_channels: int, num_classes: int, channels: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, channels, kernel_size=3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = init_classifier(nn.Conv2d(channels, num_classes, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))
