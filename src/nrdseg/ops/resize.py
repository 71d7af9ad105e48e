"""Bilinear resizing with align_corners=False, the convention of every head and evaluator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=False, the convention of every head here.

    Training on CUDA under ``torch.use_deterministic_algorithms(True)``
    (``train.deterministic: true``) takes :func:`resize_by_matmul`: the backward of
    ``F.interpolate`` adds with atomics there, in no fixed order.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.is_cuda and x.requires_grad and torch.are_deterministic_algorithms_enabled():
        return resize_by_matmul(x, size)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def bilinear_matrix(
    size_in: int, size_out: int, *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(size_out, size_in) weights of 1-D linear interpolation with align_corners=False:
    output ``i`` samples the input at ``(i + 0.5) * size_in / size_out - 0.5``, clamped at 0,
    between its two neighbours (PyTorch's convention when a size is given)."""
    position = (torch.arange(size_out, device=device, dtype=torch.float64) + 0.5) * (
        size_in / size_out
    ) - 0.5
    position = position.clamp_min(0)
    low = position.floor().long().clamp_max(size_in - 1)
    high = (low + 1).clamp_max(size_in - 1)
    frac = (position - low)[:, None]
    weights = F.one_hot(low, size_in) * (1 - frac) + F.one_hot(high, size_in) * frac
    return weights.to(dtype)


def resize_by_matmul(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``resize`` as two matrix products (rows, then columns): the same values up to
    rounding, with a backward of matrix products, deterministic on CUDA."""
    height, width = (int(v) for v in size)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    rows = bilinear_matrix(x.shape[-2], height, device=x.device, dtype=dtype)
    cols = bilinear_matrix(x.shape[-1], width, device=x.device, dtype=dtype)
    return torch.matmul(torch.matmul(rows, x.to(dtype)), cols.T)
