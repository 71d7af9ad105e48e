"""SegFormer's all-MLP head: per-level projections, upsampled to stride 4, fused by a 1x1."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.models.blocks import ConvBNReLU, init_classifier
from nrdseg.models.heads.base import DecodeHead
from nrdseg.ops.resize import resize

#: The maps the head reads, deepest first: the concatenation order of the original.
_LEVELS = ("neck", "stride16", "stride8", "stride4")


class SegFormerHead(DecodeHead):
    """SegFormer's all-MLP decoder (Xie, Wang, Yu, Anandkumar, Alvarez, Luo; NeurIPS 2021),
    with mmsegmentation's projections (``SegformerHead``: 1x1 conv + BN + ReLU per level).

    Input: the four encoder maps, deepest first, (B, C_l, H_l, W_l): the ASPP output
    stands in for the stride-32 level, then stride 16, 8 and 4 from the backbone. Each is
    projected to ``channels`` (C), resized bilinearly (align_corners=False) to the stride-4
    map's size and concatenated, deepest first as in the original; a 1x1 conv 4C -> C
    without bias + BN + ReLU fuses them, then dropout (``dropout``, 0.1) and a 1x1
    classifier: (B, classes, H/4, W/4) logits.

    The original projects each level with a plain linear layer (no norm, no activation);
    :class:`SegFormerLinearHead` is that version. mmseg's BN + ReLU after each projection
    puts a nonlinearity between projection and fuse, so the two cannot be merged here and
    the fuse runs on 4C channels at stride 4 (~0.39 M MACs per stride-4 pixel at C = 256 on
    ResNet-50 widths).

    The paper credits the head's success to the transformer encoder's large effective
    receptive field (its deep levels already see global context, so a light head
    suffices) and reports the same head clearly weaker on CNN encoders (ResNet, ResNeXt;
    ADE20K): on nrdseg's ResNet encoder, where the ASPP output stands in for the deepest
    level, it may be weaker than on MiT. Its results come from the head on MiT
    encoders: SegFormer-B4 50.3 % mIoU on ADE20K, SegFormer-B5 84.0 % on Cityscapes val;
    C = 256 for B0/B1 (the zoo default), 768 for the larger ones.
    """

    inputs: ClassVar[dict[str, tuple[str, ...]]] = {"in_channels": _LEVELS}
    width_options = ("channels",)

    def __init__(
        self,
        *,
        in_channels: tuple[int, ...],
        num_classes: int,
        channels: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.projections = nn.ModuleList(self.projection(c, channels) for c in in_channels)
        self.fuse = ConvBNReLU(len(in_channels) * channels, channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = init_classifier(nn.Conv2d(channels, num_classes, kernel_size=1))

    @staticmethod
    def projection(in_channels: int, channels: int) -> nn.Module:
        """One level's projection: mmseg's ConvModule (1x1 conv + BN + ReLU)."""
        return ConvBNReLU(in_channels, channels)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        size = features[-1].shape[-2:]
        projected = [resize(p(x), size) for p, x in zip(self.projections, features, strict=True)]
        return self.classifier(self.dropout(self.fuse(torch.cat(projected, dim=1))))


class SegFormerLinearHead(SegFormerHead):
    """SegFormer's all-MLP decoder as the paper writes it: plain linear projections.

    Same inputs, output and options as :class:`SegFormerHead`; each level's projection is
    a linear map (a 1x1 conv) with no norm or activation, as in the original. Without a
    bias: the BatchNorm after the fuse removes any constant, so a bias there could not
    learn (zero gradient) and would change nothing.

    How it runs (the same function; tests/models/test_segformer.py checks it against the
    naive order). Projection, bilinear resize and the fuse conv are all linear, and a 1x1
    conv commutes with a resize, so fuse(concat(resize(P_l x_l))) = sum_l resize((F_l P_l)
    x_l), F_l the fuse weight's block of level l: the composed C x C_l map runs on each
    level at its own resolution and only C channels per level are resized; the fuse's
    BatchNorm and ReLU follow the sum. Per stride-4 pixel that drops the 4C x C fuse, so
    the head costs sum_l C_l x C per cell of each level plus the classifier (~16 GMACs at
    1024x2048 for C = 256 on ResNet-50 widths, against ~50 for mmseg's).
    """

    own_init: ClassVar[dict[str, str]] = {
        "projections": "PyTorch's default (nn.Linear's, uniform +-1/sqrt(fan_in)), as the "
        "original, whose init touches only the classifier",
    }

    @staticmethod
    def projection(in_channels: int, channels: int) -> nn.Module:
        """One level's projection: a plain linear map over channels, as the original."""
        return nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        size = features[-1].shape[-2:]
        blocks = self.fuse[0].weight.flatten(1).split(self.channels, dim=1)
        fused = [
            resize(F.conv2d(x, (block @ p.weight.flatten(1))[:, :, None, None]), size)
            for x, p, block in zip(features, self.projections, blocks, strict=True)
        ]
        x = self.fuse[2](self.fuse[1](sum(fused[1:], fused[0])))  # the fuse's BN and ReLU
        return self.classifier(self.dropout(x))
