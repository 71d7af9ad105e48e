"""The per-patch MLP for inference: inputs already normalized, no full-size copies it can avoid.

The training path (:func:`nrdseg.ops.dynamic_mlp.per_patch_mlp`) concatenates coordinates
and guidance, normalizes them, and reads the generated weights straight from the NCHW
controller output, where consecutive cells of one weight are a whole plane apart; CPU
batched matmul then falls back to one small GEMM per cell. Here the weights are read
cell-major (one contiguous row of N values per cell), the coordinates arrive already
normalized and are broadcast into the patch layout in the same copy as the guidance, and
the logits are written channels-last, the cheapest scatter out of patch order. On CUDA
with Triton installed, and when no gradient is needed, one fused kernel does it all.
"""

from __future__ import annotations

import torch

from nrdseg.ops.dynamic_mlp import mlp_param_count, split_params
from nrdseg.ops.dynamic_mlp_triton import patch_mlp_triton, triton_usable


def patch_mlp_inference(
    *,
    guidance: torch.Tensor | None,
    coords: torch.Tensor | None,
    params: torch.Tensor,
    hidden_channels: int,
    num_classes: int,
    backend: str = "auto",
) -> torch.Tensor:
    """Run each cell's MLP on [coords, guidance] of its s x s block.

    guidance: (B, C_g, H'*s, W'*s) or None; coords: (C_c, s, s), the same for every cell, or
    None; params: (B, N, H', W'). Both inputs are taken as already normalized. Returns
    (B, classes, H'*s, W'*s) logits, channels-last in memory. ``backend`` is "torch",
    "triton" (CUDA, or CPU under ``TRITON_INTERPRET=1``) or "auto": Triton when
    :func:`~nrdseg.ops.dynamic_mlp_triton.triton_usable`, else PyTorch.
    """
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
    n_params, cells_h, cells_w = params.shape[1:]
    if coords is None and guidance is None:
        raise ValueError("the per-patch MLP needs coords, guidance or both")
    s = coords.shape[-1] if coords is not None else guidance.shape[-1] // cells_w
    in_channels = (0 if coords is None else coords.shape[0]) + (
        0 if guidance is None else guidance.shape[1]
    )
    expected = mlp_param_count(
        in_channels=in_channels, hidden_channels=hidden_channels, num_classes=num_classes
    )
    if n_params != expected:
        raise ValueError(
            f"per-patch MLP expects {expected} parameters per cell "
            f"({in_channels}->{hidden_channels}->{hidden_channels}->{num_classes}), got {n_params}"
        )
    if guidance is not None and tuple(guidance.shape[-2:]) != (cells_h * s, cells_w * s):
        raise ValueError(
            f"guidance map {tuple(guidance.shape[-2:])} is not {s} x the "
            f"{cells_h}x{cells_w} parameter map"
        )
    if backend == "triton" or (backend == "auto" and triton_usable(params, guidance)):
        return patch_mlp_triton(
            guidance=guidance,
            coords=coords,
            params=params,
            hidden_channels=hidden_channels,
            num_classes=num_classes,
        )
    return _patch_mlp_torch(
        guidance=guidance,
        coords=coords,
        params=params,
        hidden_channels=hidden_channels,
        num_classes=num_classes,
        patch_size=s,
    )


def _patch_mlp_torch(
    *,
    guidance: torch.Tensor | None,
    coords: torch.Tensor | None,
    params: torch.Tensor,
    hidden_channels: int,
    num_classes: int,
    patch_size: int,
) -> torch.Tensor:
    batch, _, cells_h, cells_w = params.shape
    s = patch_size
    parts = []
    if coords is not None:
        parts.append(coords.permute(1, 2, 0).expand(batch, cells_h, cells_w, s, s, -1))
    if guidance is not None:
        channels = guidance.shape[1]
        blocks = guidance.reshape(batch, channels, cells_h, s, cells_w, s)
        parts.append(blocks.permute(0, 2, 4, 3, 5, 1))
    x = torch.cat(parts, dim=-1).flatten(0, 2).flatten(1, 2)  # (P, s*s, C_in), one copy
    theta = params.permute(0, 2, 3, 1).contiguous().flatten(0, 2)  # (P, N), cell-major
    w0, b0, w1, b1, w2, b2 = split_params(
        theta, in_channels=x.shape[-1], hidden_channels=hidden_channels, num_classes=num_classes
    )
    h = torch.baddbmm(b0.unsqueeze(1), x, w0.transpose(1, 2)).relu_()
    h = torch.baddbmm(b1.unsqueeze(1), h, w1.transpose(1, 2)).relu_()
    out = torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2))  # (P, s*s, classes)
    out = out.reshape(batch, cells_h, cells_w, s, s, num_classes).transpose(2, 3)
    return out.reshape(batch, cells_h * s, cells_w * s, num_classes).permute(0, 3, 1, 2)
