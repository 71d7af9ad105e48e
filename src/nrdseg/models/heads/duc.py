"""DUC decoder (Wang et al., WACV 2018): one conv to C * r^2 channels, then depth-to-space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.models.blocks import init_classifier
from nrdseg.models.heads.base import DecodeHead


class DUCHead(DecodeHead):
    """Dense upsampling convolution: each encoder cell predicts its r x r block of logits.

    A ``kernel_size`` conv maps the encoder output to ``num_classes * r^2`` channels and a
    pixel shuffle lays channel ``c * r^2 + i * r + j`` of cell (y, x) at pixel
    (y * r + i, x * r + j) of class c. The default r = 32 on the stride-32 encoder gives
    full-resolution logits, as DUC does; r = 8 stops at stride 4 and leaves the rest to
    the bilinear resize. The 3x3 conv to 19 * 1024 channels dominates the cost (89.7 M
    parameters, 183.6 GMACs at 1024x2048).
    """

    #: The conv is DUC's classifier.
    classifiers = ("conv",)

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        upscale_factor: int = 32,
        kernel_size: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.upscale_factor = upscale_factor
        self.dropout = nn.Dropout2d(dropout)
        # The conv is DUC's classifier: initialised as mmseg's conv_seg.
        self.conv = init_classifier(
            nn.Conv2d(
                in_channels,
                num_classes * upscale_factor**2,
                kernel_size=kernel_size,
                padding=kernel_size // 2,
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(self.dropout(x)), self.upscale_factor)
