"""Small conv building blocks shared by the neck and the heads (mmseg's ConvModule family)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=False, the convention of every head here."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU, the unit every head and the ASPP are made of."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise 3x3 (+BN+ReLU) then pointwise 1x1 (+BN+ReLU), as in DeepLabV3+."""

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int = 3, dilation: int = 1
    ) -> None:
        super().__init__(
            ConvBNReLU(
                in_channels,
                in_channels,
                kernel_size=kernel_size,
                dilation=dilation,
                groups=in_channels,
            ),
            ConvBNReLU(in_channels, out_channels, kernel_size=1),
        )
