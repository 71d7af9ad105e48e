"""Cosine similarity of each pixel with its 8 neighbours (FreqFusion's offset generator).

Chen et al., "Frequency-aware Feature Fusion for Dense Image Prediction" (TPAMI 2024):
the offsets that resample the upsampled map are predicted from these similarities, so
that a pixel unlike its neighbours can move towards the ones it resembles.

Written as a normalisation and one einsum (a batched matrix product), so that its
multiply-accumulates are counted (:mod:`nrdseg.analysis.flops`): C per pixel for the
norm, 8 C for the dot products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nrdseg.ops.carafe import sliding_windows

#: The 3x3 window's taps, row-major, without the centre (tap 4): the output's channels.
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def local_cosine_similarity(
    x: torch.Tensor, *, dilation: int = 2, eps: float = 1e-12
) -> torch.Tensor:
    """(B, C, H, W) -> (B, 8, H, W): cosine similarity of pixel (i, j) with pixel
    (i + dy * dilation, j + dx * dilation) for (dy, dx) in :data:`NEIGHBOURS`.

    Each vector is divided by ``max(norm, eps)`` first; a neighbour outside the map is a
    zero vector (similarity 0), as in the official code's zero-padded windows.
    """
    unit = F.normalize(x, dim=1, eps=eps)
    windows = sliding_windows(unit, 3, dilation=dilation)  # (B, C, H, W, 9), zeros outside
    neighbours = torch.cat([windows[..., :4], windows[..., 5:]], dim=-1)  # drop the centre
    # a contraction over channels batched over pixels: a bmm, whose MACs are counted
    return torch.einsum("bchw,bchwn->bnhw", unit, neighbours)
