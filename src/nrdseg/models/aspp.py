"""Depthwise-separable ASPP neck (the encoder part of mmseg's DepthwiseSeparableASPPHead)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrdseg.models.blocks import ConvBNReLU, GlobalAvgPool2d, SeparableConvBNReLU
from nrdseg.ops.batchnorm_checks import check_batch_statistics

#: ASPP dilations per encoder output stride: (1, 3, 6, 9) at stride 32 is the official NRD
#: encoder's; 16 and 8 are DeepLabV3's rates (6, 12, 18 at stride 16, doubled at 8).
DILATIONS_BY_STRIDE = {32: (1, 3, 6, 9), 16: (1, 6, 12, 18), 8: (1, 12, 24, 36)}


class SeparableASPP(nn.Module):
    """Image pooling + 1x1 + depthwise-separable atrous 3x3 branches, fused by a 3x3 conv."""

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int = 512,
        dilations: Sequence[int] = DILATIONS_BY_STRIDE[32],
    ) -> None:
        super().__init__()
        self.out_channels = channels
        self.image_pool = nn.Sequential(
            GlobalAvgPool2d(), ConvBNReLU(in_channels, channels, kernel_size=1)
        )
        branches = []
        for dilation in dilations:
            if dilation == 1:
                branches.append(ConvBNReLU(in_channels, channels, kernel_size=1))
            else:
                branches.append(SeparableConvBNReLU(in_channels, channels, dilation=dilation))
        self.branches = nn.ModuleList(branches)
        self.bottleneck = ConvBNReLU((len(dilations) + 1) * channels, channels, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch_statistics(self.image_pool, x.shape[0])
        pooled = self.image_pool(x).expand(-1, -1, x.shape[2], x.shape[3])
        outs = [pooled] + [branch(x) for branch in self.branches]
        return self.bottleneck(torch.cat(outs, dim=1))
