"""CARAFE's content-aware reassembly (Wang et al., ICCV 2019) in plain PyTorch.

Each output pixel is a weighted sum of the k x k input neighbourhood of its source pixel,
with its own predicted weights. Written with sliding-window views and one einsum (a
batched matrix product), so it runs on any device, exports to ONNX and its
multiply-accumulates are counted.
At scale 1 it is a per-pixel adaptive filter: FreqFusion's low- and high-pass filters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reassemble(x: torch.Tensor, kernels: torch.Tensor, *, scale: int) -> torch.Tensor:
    """Upsample ``x`` (B, C, H, W) by ``scale`` with per-pixel ``kernels`` (B, k*k, sH, sW).

    Output pixel (i, j) is ``sum_n kernels[:, n, i, j] * x[:, :, i // s + dy, j // s + dx]``
    with n = (dy + k // 2) * k + (dx + k // 2) over the k x k window, zero outside ``x``.
    The kernels are used as given; CARAFE normalizes them with a softmax over dim 1.
    """
    batch, channels, height, width = x.shape
    taps = kernels.shape[1]
    k = math.isqrt(taps)
    if k * k != taps or k % 2 == 0:
        raise ValueError(f"kernels must have k*k channels for an odd k, got {taps}")
    if tuple(kernels.shape[-2:]) != (height * scale, width * scale) or kernels.shape[0] != batch:
        raise ValueError(
            f"kernels {tuple(kernels.shape)} do not match x {tuple(x.shape)} upsampled x{scale}"
        )
    r = k // 2
    windows = F.pad(x, (r, r, r, r)).unfold(2, k, 1).unfold(3, k, 1)  # (B, C, H, W, k, k)
    weights = kernels.reshape(batch, k, k, height, scale, width, scale)
    # One contraction over the taps, batched over pixels (a bmm: its MACs are counted).
    # Sliding-window views and einsum export to a few ONNX nodes; F.unfold and reshaping
    # for torch.bmm made dozens, and ten times the export time.
    out = torch.einsum("buvhiwj,bchwuv->bchiwj", weights, windows)
    return out.reshape(batch, channels, height * scale, width * scale)


def sharpen(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``x + (x - lowpass(x))``: FreqFusion's adaptive high-pass, added back residually.

    ``kernels`` (B, k*k, H, W) are per-pixel low-pass kernels (softmax-normalised) at
    x's own size; the high-pass kernel is the identity tap minus them, as the paper's
    X~ = X + F_HP(X) with F_HP = E - softmax(V) (Chen et al., TPAMI 2024). The low-pass
    is :func:`reassemble` at scale 1 (zero outside the map).
    """
    return 2 * x - reassemble(x, kernels, scale=1)
