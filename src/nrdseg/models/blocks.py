"""Small conv building blocks shared by the neck and the heads (mmseg's ConvModule family).

Initialisation follows mmcv, as the authors' code gets it: every conv a ``ConvModule``
builds is kaiming-normal (fan_out, ReLU gain) with bias 0 and its BatchNorm starts at
weight 1, bias 0 (:func:`init_conv_module`); mmseg's ``conv_seg`` classifiers are
normal(0, 0.01) with bias 0 (:func:`init_classifier`). With BatchNorm after a conv the
forward pass does not depend on the weight scale, but the effective learning rate does
(it scales as 1 / |W|^2), so PyTorch's default init would train differently.
"""

from __future__ import annotations

import torch
from torch import nn


class GlobalAvgPool2d(nn.Module):
    """(B, C, H, W) -> (B, C, 1, 1) mean, as ``nn.AdaptiveAvgPool2d(1)`` but with a
    deterministic backward on CUDA (a broadcast, not atomic adds)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=True)


def init_conv_module(conv: nn.Conv2d) -> nn.Conv2d:
    """mmcv ``ConvModule``'s init, in place: kaiming normal (fan_out, ReLU), bias 0.

    mmcv applies it whether or not the module has a norm or an activation. For a
    depthwise conv PyTorch's fan_out is out_channels x kernel area, as in mmcv.
    """
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def init_classifier(conv: nn.Conv2d) -> nn.Conv2d:
    """mmseg's ``conv_seg`` init, in place: normal(0, 0.01), bias 0."""
    nn.init.normal_(conv.weight, mean=0.0, std=0.01)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU, the unit every head and the ASPP are made of.

    Initialised as mmcv's ``ConvModule``: see :func:`init_conv_module`. A Sequential, so
    checkpoints keep the keys ``0.weight`` (conv) and ``1.*`` (norm); :attr:`conv` and
    :attr:`norm` name those parts for code that reads them.
    """

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
        init_conv_module(self.conv)  # PyTorch's BatchNorm already starts at 1 / 0, as mmcv's

    @property
    def conv(self) -> nn.Conv2d:
        """The convolution (no bias)."""
        return self[0]

    @property
    def norm(self) -> nn.Module:
        """The BatchNorm after the conv (a SyncBatchNorm once converted for DDP)."""
        return self[1]


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
