"""CARAFE's content-aware reassembly (Wang et al., ICCV 2019) in plain PyTorch.

Each output pixel is a weighted sum of the k x k input neighbourhood of its source pixel,
with its own predicted weights. Written with unfold and one batched matrix product,
so it runs on any device, exports to ONNX and its multiply-accumulates are counted.
The two layouts it multiplies (each low-res pixel's window, each low-res pixel's s x s
children) are public: SAPA's window similarity is the same product with other operands.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def window_rows(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, k*k, C): the ``kernel_size`` window around each pixel, taps
    row-major (tap n = (dy + k // 2) * k + (dx + k // 2)), zero outside ``x``."""
    batch, channels, height, width = x.shape
    taps = kernel_size * kernel_size
    windows = F.unfold(x, kernel_size, padding=kernel_size // 2)  # (B, C * k*k, H*W)
    windows = windows.reshape(batch, channels, taps, height * width)
    return windows.permute(0, 3, 2, 1).reshape(batch * height * width, taps, channels)


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
    batch, _, height, width = x.shape
    taps = kernels.shape[1]
    k = math.isqrt(taps)
    if k * k != taps or k % 2 == 0:
        raise ValueError(f"kernels must have k*k channels for an odd k, got {taps}")
    if tuple(kernels.shape[-2:]) != (height * scale, width * scale) or kernels.shape[0] != batch:
        raise ValueError(
            f"kernels {tuple(kernels.shape)} do not match x {tuple(x.shape)} upsampled x{scale}"
        )
    out = torch.bmm(subpixel_rows(kernels, scale=scale), window_rows(x, k))  # (B*H*W, s*s, C)
    return from_subpixel_rows(out, batch=batch, height=height, width=width, scale=scale)
