"""SAPA decoder: FPN's top-down path with SAPA x2 upsamplers (Lu et al., NeurIPS 2022)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from nrdseg.models.heads.guided_fpn import GuidedFPNHead
from nrdseg.ops.carafe import reassemble
from nrdseg.ops.fade import gated_blend, parent_values
from nrdseg.ops.sapa import similarity_kernels

#: SAPA's similarity functions nrdseg implements: the paper's gated bilinear form
#: (SAPA-G) and the plain low-rank bilinear one (SAPA-B, the released module).
SIMILARITIES = ("gated", "bilinear")


def _channel_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channels of each pixel of (B, C, H, W)."""
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SAPA(nn.Module):
    """SAPA x2 upsampling of a decoder map ``x`` (B, C, H, W) guided by an encoder map
    ``guide`` (B, C, 2H, 2W) -> (B, C, 2H, 2W).

    Lu, Liu, Ye, Cao, "SAPA: Similarity-Aware Point Affiliation for Feature Upsampling",
    NeurIPS 2022 (official code: tiny-smart/sapa, CUDA-only ops). Both maps are
    layer-normalised per pixel and projected by 1x1 convs to ``embedding_channels`` (64,
    as released): a query per high-res pixel from ``guide``, a key per low-res pixel from
    ``x``. Each high-res pixel's kernel is the softmax of its query's inner products with
    the keys of the ``up_kernel`` x ``up_kernel`` low-res window around its parent
    (:func:`nrdseg.ops.sapa.similarity_kernels`; taps outside the map get no weight), and
    it reassembles the un-normalised ``x`` with it (:func:`nrdseg.ops.carafe.reassemble`).

    ``similarity="gated"`` (SAPA-G, the paper's gated bilinear similarity, default): the
    query is ``g * P_q(guide) + (1 - g) * P_d(parent of x)`` with a one-channel gate
    ``g = sigmoid(conv1x1(x))`` from the decoder map, so that where the encoder map is
    noise the decoder's own query takes over. The decoder query and the gate are
    computed at low resolution and broadcast to the children (a 1x1 conv commutes with
    nearest upsampling), 4x fewer MACs than on the upsampled map. The official
    experiment code feeds the un-normalised decoder map to P_d; here P_d, the gate and
    the key all read the normalised one, so the gate blends queries of one scale.
    ``similarity="bilinear"`` (SAPA-B): the query is ``P_q(guide)`` alone.

    Initialisation as released: truncated normal (std 0.02) 1x1 weights, zero biases,
    LayerNorm 1 / 0.
    """

    def __init__(
        self,
        *,
        channels: int,
        embedding_channels: int = 64,
        up_kernel: int = 5,
        similarity: str = "gated",
    ) -> None:
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if up_kernel % 2 == 0:
            raise ValueError(f"up_kernel must be odd, got {up_kernel}")
        if embedding_channels < 1:
            raise ValueError(f"embedding_channels must be >= 1, got {embedding_channels}")
        self.up_kernel = up_kernel
        self.norm_guide = nn.LayerNorm(channels)
        self.norm = nn.LayerNorm(channels)
        self.query = nn.Conv2d(channels, embedding_channels, kernel_size=1)
        self.key = nn.Conv2d(channels, embedding_channels, kernel_size=1)
        convs = [self.query, self.key]
        self.decoder_query = self.gate = None
        if similarity == "gated":
            self.decoder_query = nn.Conv2d(channels, embedding_channels, kernel_size=1)
            self.gate = nn.Conv2d(channels, 1, kernel_size=1)
            convs += [self.decoder_query, self.gate]
        for conv in convs:
            nn.init.trunc_normal_(conv.weight, std=0.02)
            nn.init.zeros_(conv.bias)

    def kernels(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Softmax-normalised reassembly kernels (B, up_kernel^2, 2H, 2W)."""
        normed = _channel_norm(self.norm, x)
        query = self.query(_channel_norm(self.norm_guide, guide))
        if self.gate is not None:
            shared = parent_values(self.decoder_query(normed), scale=2)
            query = gated_blend(query, shared, self.gate(normed))
        return similarity_kernels(query, self.key(normed), kernel_size=self.up_kernel)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return reassemble(x, self.kernels(x, guide), scale=2)


class SAPAHead(GuidedFPNHead):
    """ASPP output (stride 32) -> three SAPA x2 steps, FPN style -> classifier at stride 4.

    The skeleton (laterals, ``x = SAPA(x, lateral) + lateral``, classifier) is
    :class:`~nrdseg.models.heads.guided_fpn.GuidedFPNHead`'s, the same as ``fade_r50``'s;
    each step's upsampler is a :class:`SAPA` on ``channels``-wide maps, followed by FPN's
    top-down sum with the lateral.

    Reported gain (SAPA paper, SegFormer-B1 on ADE20K, 160k iterations, single-scale,
    single runs): SAPA-G +2.7 mIoU over bilinear's 41.7. Its GFLOPs miss the similarity
    and the reassembly, which nrdseg counts (two batched matrix products).
    """

    own_init: ClassVar[dict[str, str]] = {
        "upsamplers": "truncated normal (std 0.02), bias 0, on every SAPA 1x1, as the official",
    }

    def __init__(
        self,
        *,
        in_channels: int,
        lateral_channels: Sequence[int],
        num_classes: int,
        channels: int = 256,
        embedding_channels: int = 64,
        up_kernel: int = 5,
        similarity: str = "gated",
        dropout: float = 0.1,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            lateral_channels=lateral_channels,
            num_classes=num_classes,
            channels=channels,
            dropout=dropout,
            upsampler=functools.partial(
                SAPA,
                channels=channels,
                embedding_channels=embedding_channels,
                up_kernel=up_kernel,
                similarity=similarity,
            ),
        )
