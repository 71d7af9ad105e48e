"""SAPA's similarity-aware kernels (Lu, Liu, Ye, Cao, NeurIPS 2022) in plain PyTorch.

For a x``scale`` step, each high-res pixel p compares its query q(p) (from the encoder
map) with the keys k(m) (from the decoder map) of the k x k low-res window around its
parent, and the softmax of those similarities over the window is its upsampling kernel.
The similarity is one batched matrix product of the layouts CARAFE's reassembly uses
(:func:`nrdseg.ops.carafe.window_rows`, :func:`~nrdseg.ops.carafe.subpixel_rows`), so
torch's FLOP counter sees it (s^2 H W k^2 D multiply-accumulates) and it exports to ONNX.
"""

from __future__ import annotations

import torch

from nrdseg.ops.carafe import from_subpixel_rows, subpixel_rows, window_rows


def _check(query: torch.Tensor, key: torch.Tensor, kernel_size: int, scale: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
    batch, dims, height, width = key.shape
    if tuple(query.shape) != (batch, dims, height * scale, width * scale):
        raise ValueError(
            f"query {tuple(query.shape)} must be key {tuple(key.shape)} upsampled x{scale} "
            "(same batch and embedding channels)"
        )


def _similarity_rows(query: torch.Tensor, key: torch.Tensor, kernel_size: int, scale: int):
    """(B*H*W, s*s, k*k): row (cell, child) holds the child's similarity to each tap."""
    _check(query, key, kernel_size, scale)
    keys = window_rows(key, kernel_size).transpose(1, 2)  # (B*H*W, D, k*k)
    return torch.bmm(subpixel_rows(query, scale=scale), keys)


def window_similarity(
    query: torch.Tensor, key: torch.Tensor, *, kernel_size: int, scale: int = 2
) -> torch.Tensor:
    """Inner products: query (B, D, sH, sW), key (B, D, H, W) -> (B, k*k, sH, sW).

    ``out[:, n, i, j] = <query[:, :, i, j], key[:, :, i // s + dy, j // s + dx]>`` with
    n = (dy + k // 2) * k + (dx + k // 2); 0 for taps outside ``key`` (zero padding).
    Raises ``ValueError`` for an even ``kernel_size`` or shapes that do not pair up.
    """
    batch, _, height, width = key.shape
    rows = _similarity_rows(query, key, kernel_size, scale)
    return from_subpixel_rows(rows, batch=batch, height=height, width=width, scale=scale)


def similarity_kernels(
    query: torch.Tensor, key: torch.Tensor, *, kernel_size: int, scale: int = 2
) -> torch.Tensor:
    """SAPA's kernels: the softmax of :func:`window_similarity` over the taps inside the
    map, (B, k*k, sH, sW), ready for :func:`nrdseg.ops.carafe.reassemble`.

    Taps outside the map get weight 0 and the others sum to 1 (the official CUDA code's
    border rule is not documented; a zero-padded key would give out-of-map taps the
    similarity 0 and a share of the weight, and zero values would pull borders to 0).
    """
    batch, _, height, width = key.shape
    rows = _similarity_rows(query, key, kernel_size, scale)
    inside = window_rows(key.new_ones(1, 1, height, width), kernel_size)  # (H*W, k*k, 1)
    inside = inside.reshape(1, height * width, 1, kernel_size**2) > 0
    rows = rows.reshape(batch, height * width, scale**2, kernel_size**2)
    rows = rows.masked_fill(~inside, float("-inf")).softmax(dim=-1)
    rows = rows.reshape(batch * height * width, scale**2, kernel_size**2)
    return from_subpixel_rows(rows, batch=batch, height=height, width=width, scale=scale)
