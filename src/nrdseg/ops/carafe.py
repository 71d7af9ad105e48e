"""CARAFE's content-aware reassembly (Wang et al., ICCV 2019) in plain PyTorch.

Each output pixel is a weighted sum of the k x k input neighbourhood of its source pixel,
with its own predicted weights. Written with sliding-window views and one einsum (a
batched matrix product), so it runs on any device, exports to ONNX and its
multiply-accumulates are counted. At scale 1 it is a per-pixel adaptive filter:
FreqFusion's low- and high-pass filters. The layouts it multiplies (each low-res pixel's
window, each low-res pixel's s x s children) are public: SAPA's window similarity is the
same product with other operands, FreqFusion's local similarity another.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sliding_windows(x: torch.Tensor, kernel_size: int, *, dilation: int = 1) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W, k*k): the ``kernel_size`` window around each pixel at
    ``dilation``, taps row-major (tap n = (dy + k // 2) * k + (dx + k // 2)), zero outside
    ``x``. A view of the padded map: sliding windows, not ``F.unfold``, which exports to
    ONNX as dozens of index nodes."""
    reach = dilation * (kernel_size // 2)
    span = 2 * reach + 1
    padded = F.pad(x, (reach, reach, reach, reach))
    windows = padded.unfold(2, span, 1).unfold(3, span, 1)[..., ::dilation, ::dilation]
    return windows.flatten(-2)


def window_rows(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, k*k, C): :func:`sliding_windows` as one row per pixel."""
    batch, channels, height, width = x.shape
    windows = sliding_windows(x, kernel_size).permute(0, 2, 3, 4, 1)
    return windows.reshape(batch * height * width, kernel_size**2, channels)


def subpixel_rows(t: torch.Tensor, *, scale: int) -> torch.Tensor:
    """(B, C, sH, sW) -> (B*H*W, s*s, C): each low-res pixel's s x s children, row-major."""
    batch, channels, high_h, high_w = t.shape
    height, width = high_h // scale, high_w // scale
    t = t.reshape(batch, channels, height, scale, width, scale)
    return t.permute(0, 2, 4, 3, 5, 1).reshape(batch * height * width, scale**2, channels)


def from_subpixel_rows(
    rows: torch.Tensor, *, batch: int, height: int, width: int, scale: int
) -> torch.Tensor:
    """Inverse of :func:`subpixel_rows`: (B*H*W, s*s, C) -> (B, C, sH, sW)."""
    channels = rows.shape[-1]
    out = rows.reshape(batch, height, width, scale, scale, channels).permute(0, 5, 1, 3, 2, 4)
    return out.reshape(batch, channels, height * scale, width * scale)


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
    weights = kernels.reshape(batch, taps, height, scale, width, scale)
    # One contraction over the taps, batched over pixels: a bmm (its MACs are counted)
    # that exports as one ONNX Einsum; reshaping for torch.bmm took three times as long.
    out = torch.einsum("bnhiwj,bchwn->bchiwj", weights, sliding_windows(x, k))
    return out.reshape(batch, channels, height * scale, width * scale)


def sharpen(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``x + (x - lowpass(x))``: FreqFusion's adaptive high-pass, added back residually.

    ``kernels`` (B, k*k, H, W) are per-pixel low-pass kernels (softmax-normalised) at
    x's own size; the high-pass kernel is the identity tap minus them, as the paper's
    X~ = X + F_HP(X) with F_HP = E - softmax(V) (Chen et al., TPAMI 2024). The low-pass
    is :func:`reassemble` at scale 1 (zero outside the map).
    """
    return 2 * x - reassemble(x, kernels, scale=1)
