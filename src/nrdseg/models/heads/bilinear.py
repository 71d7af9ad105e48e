"""Bilinear decoder: a 1x1 classifier on the encoder output, upsampled by the segmentor."""

from __future__ import annotations

import torch
from torch import nn

from nrdseg.models.blocks import init_classifier
from nrdseg.models.heads.base import DecodeHead


class BilinearHead(DecodeHead):
    """The simplest decoder of the paper's Table 1.

    The 1x1 conv runs at the encoder's resolution. Bilinear upsampling and a 1x1 conv
    commute (both linear, interpolation weights sum to one), so this equals classifying
    after upsampling, at 1/64 of the cost the paper counts (1.3 GMACs at 1024x2048).
    """

    def __init__(self, *, in_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = init_classifier(nn.Conv2d(in_channels, num_classes, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(x))
