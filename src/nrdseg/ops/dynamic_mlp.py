"""The per-patch dynamic MLP g_theta of NRD, as batched matrix products.

Every cell of the stride-32 map owns an s x s block of the stride-4 input map and a flat
vector of N generated parameters. The vector is split, in order, into
[w0, b0, w1, b1, w2, b2] with weights stored out-major (index = o * c_in + i), and the
three 1x1 layers (c_in -> hidden -> hidden -> classes, ReLU between) run on that block.
"""

from __future__ import annotations

import torch


def mlp_param_count(*, in_channels: int, hidden_channels: int, num_classes: int) -> int:
    """N, the number of parameters the controller generates per location."""
    return (
        in_channels * hidden_channels
        + hidden_channels
        + hidden_channels * hidden_channels
        + hidden_channels
        + hidden_channels * num_classes
        + num_classes
    )


def split_params(
    params: torch.Tensor, *, in_channels: int, hidden_channels: int, num_classes: int
) -> list[torch.Tensor]:
    """Split (P, N) into [w0 (P,h,c_in), b0 (P,h), w1 (P,h,h), b1, w2 (P,C,h), b2 (P,C)]."""
    shapes = [
        (hidden_channels, in_channels),
        (hidden_channels,),
        (hidden_channels, hidden_channels),
        (hidden_channels,),
        (num_classes, hidden_channels),
        (num_classes,),
    ]
    sizes = [int(torch.Size(shape).numel()) for shape in shapes]
    expected = sum(sizes)
    if params.shape[-1] != expected:
        raise ValueError(
            f"per-patch MLP expects {expected} parameters per location "
            f"({in_channels}->{hidden_channels}->{hidden_channels}->{num_classes}), "
            f"got {params.shape[-1]}"
        )
    chunks = torch.split(params, sizes, dim=-1)
    return [
        chunk.reshape(params.shape[0], *shape) for chunk, shape in zip(chunks, shapes, strict=True)
    ]


def patch_coordinates(
    patch_size: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """(2, s, s) local coordinates of one patch: channel 0 is x = j/s, channel 1 is y = i/s."""
    steps = torch.arange(patch_size, device=device, dtype=dtype) / patch_size
    y, x = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([x, y])


def to_patches(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H'*s, W'*s) -> (B*H'*W', s*s, C), patches in row-major cell order."""
    b, c, h, w = x.shape
    s = patch_size
    x = x.reshape(b, c, h // s, s, w // s, s).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, s * s, c)


def from_patches(
    y: torch.Tensor, *, batch: int, cells_h: int, cells_w: int, patch_size: int
) -> torch.Tensor:
    """Inverse of :func:`to_patches`: (B*H'*W', s*s, C) -> (B, C, H'*s, W'*s)."""
    s = patch_size
    c = y.shape[-1]
    y = y.reshape(batch, cells_h, cells_w, s, s, c).permute(0, 5, 1, 3, 2, 4)
    return y.reshape(batch, c, cells_h * s, cells_w * s)


def per_patch_mlp(
    inputs: torch.Tensor,
    params: torch.Tensor,
    *,
    hidden_channels: int,
    num_classes: int,
) -> torch.Tensor:
    """Run each cell's generated MLP on its block of ``inputs``.

    inputs: (B, C_in, H'*s, W'*s); params: (B, N, H', W'). Returns (B, classes, H'*s, W'*s).
    """
    batch, in_channels, height, width = inputs.shape
    cells_h, cells_w = params.shape[-2:]
    patch_size = height // cells_h
    if patch_size * cells_h != height or patch_size * cells_w != width:
        raise ValueError(
            f"input map {height}x{width} is not an s-multiple of the {cells_h}x{cells_w} "
            "parameter map"
        )
    x = to_patches(inputs, patch_size)
    theta = params.permute(0, 2, 3, 1).reshape(-1, params.shape[1])
    w0, b0, w1, b1, w2, b2 = split_params(
        theta, in_channels=in_channels, hidden_channels=hidden_channels, num_classes=num_classes
    )
    h = torch.baddbmm(b0.unsqueeze(1), x, w0.transpose(1, 2)).relu_()
    h = torch.baddbmm(b1.unsqueeze(1), h, w1.transpose(1, 2)).relu_()
    out = torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2))
    return from_patches(out, batch=batch, cells_h=cells_h, cells_w=cells_w, patch_size=patch_size)
