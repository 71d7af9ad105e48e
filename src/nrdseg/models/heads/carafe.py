"""CARAFE decoder: content-aware x2 upsampling stages from the encoder output to stride 4."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.models.blocks import init_classifier
from nrdseg.models.heads.base import DecodeHead
from nrdseg.ops.carafe import reassemble


class CARAFEHead(DecodeHead):
    """``stages`` CARAFE x2 stages (3: stride 32 -> 4) on the encoder output, then a classifier.

    Each stage predicts, per output pixel, a softmax-normalized ``up_kernel``^2 kernel: a 1x1
    channel compressor, an ``encoder_kernel`` content encoder to 4 * ``up_kernel``^2 channels
    and a pixel shuffle (CARAFE's defaults k_up = 5, k_enc = 3, 64 compressed channels).
    x2 stages follow the CARAFE paper, where every kernel is predicted from the map it
    upsamples, so later stages see the content the earlier ones rearranged.

    What is reassembled is the feature map, but it is computed without moving 512 channels
    at stride 4: the compressors and the classifier are 1x1 convolutions, linear maps over
    channels, and reassembly mixes only space, so the two commute (with the bias added
    after reassembly, as zero padding at the border does not preserve constants). Each
    stage therefore reassembles only what later layers read (the next compressors' outputs
    and the logits): the logits of reassembling features, for a fraction of the memory
    and GMACs.
    """

    own_init: ClassVar[dict[str, str]] = {
        "compressors": "xavier uniform, as mmcv's CARAFEPack",
        "encoders": "normal(0, 0.001): every stage starts as a box filter, as CARAFE does",
    }

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        stages: int = 3,
        compressed_channels: int = 64,
        up_kernel: int = 5,
        encoder_kernel: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if stages < 1:
            raise ValueError(f"CARAFE needs at least one x2 stage, got stages={stages}")
        if up_kernel % 2 == 0 or encoder_kernel % 2 == 0:
            raise ValueError(
                f"up_kernel and encoder_kernel must be odd, got {up_kernel}, {encoder_kernel}"
            )
        self.compressors = nn.ModuleList(
            nn.Conv2d(in_channels, compressed_channels, kernel_size=1) for _ in range(stages)
        )
        self.encoders = nn.ModuleList(
            nn.Conv2d(
                compressed_channels,
                4 * up_kernel**2,
                kernel_size=encoder_kernel,
                padding=encoder_kernel // 2,
            )
            for _ in range(stages)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = init_classifier(nn.Conv2d(in_channels, num_classes, kernel_size=1))
        for compressor in self.compressors:
            # mmcv's CARAFEPack: xavier-uniform convs, then the encoder as below.
            nn.init.xavier_uniform_(compressor.weight)
            nn.init.zeros_(compressor.bias)
        for encoder in self.encoders:
            # Near-zero encoder weights start every stage as a box filter, as CARAFE does.
            nn.init.normal_(encoder.weight, std=1e-3)
            nn.init.zeros_(encoder.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        carried = [F.conv2d(x, compressor.weight) for compressor in self.compressors]
        carried.append(F.conv2d(self.dropout(x), self.classifier.weight))
        for compressor, encoder in zip(self.compressors, self.encoders, strict=True):
            compressed = carried[0] + compressor.bias[:, None, None]
            kernels = F.pixel_shuffle(encoder(compressed), 2).softmax(dim=1)
            rest = carried[1:]
            upsampled = reassemble(torch.cat(rest, dim=1), kernels, scale=2)
            carried = list(torch.split(upsampled, [t.shape[1] for t in rest], dim=1))
        return carried[0] + self.classifier.bias[:, None, None]
