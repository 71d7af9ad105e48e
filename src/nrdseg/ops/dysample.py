"""DySample's point sampling (Liu, Lu, Fu, Cao, ICCV 2023) in plain PyTorch.

Upsampling by ``s`` as sampling: output pixel (s*h + i, s*w + j) reads the input, by
bilinear interpolation, at the point where bilinear upsampling would read it, moved by a
learned offset. Offsets are in pixels of the low-resolution grid they are predicted on.
One ``grid_sample`` per call (bilinear, ``align_corners=False``, border padding), each
channel group at its own grid; no 5-D ``pixel_shuffle`` (which broke ONNX export of the
official code until 2023-12): the grid is built by one reshape and one permutation.

With zero offsets the result equals ``F.interpolate(x, scale_factor=s, mode="bilinear",
align_corners=False)`` everywhere, borders included: bilinear upsampling reads the input
at ``(J + 0.5) / s - 0.5`` and clamps that to ``[0, W - 1]``, and border padding clamps
``grid_sample``'s coordinate to the same range (zero padding would instead fade the
outermost ``s / 2`` output rows and columns towards 0).

``grid_sample``'s backward has no deterministic CUDA kernel: with ``train.deterministic:
true`` (``warn_only``) PyTorch warns and CUDA training of a DySample or FreqFusion model
is not bit-reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sampling_grid(
    offsets: torch.Tensor, *, scale: int, groups: int, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """(B, 2*g*s^2, H, W) offsets -> (B*g, s*H, s*W, 2) ``grid_sample`` grid in [-1, 1].

    Offset channels are ordered [x/y][group][sub-pixel i*s + j] (the official order), in
    units of one low-resolution pixel. Each output pixel (s*h + i, s*w + j) starts at the
    centre of its parent cell (h, w) moved by the fixed sub-pixel position
    ((j - (s-1)/2) / s, (i - (s-1)/2) / s), which is where bilinear upsampling samples;
    in normalised coordinates that start is simply the output pixel's own centre.

    Raises ``ValueError`` when the channel count is not 2 * groups * scale^2.
    """
    batch, channels, height, width = offsets.shape
    if channels != 2 * groups * scale**2:
        raise ValueError(
            f"offsets have {channels} channels; scale {scale} with {groups} groups needs "
            f"2 * groups * scale^2 = {2 * groups * scale**2}"
        )
    dtype = dtype or offsets.dtype
    # (B, xy, g, i, j, h, w) -> (B, g, h, i, w, j, xy): row s*h + i, column s*w + j.
    moved = offsets.to(dtype).reshape(batch, 2, groups, scale, scale, height, width)
    moved = moved.permute(0, 2, 5, 3, 6, 4, 1).reshape(batch * groups, scale * height, -1, 2)
    # Output pixel centres in normalised coordinates, (2J + 1) / (s*W) - 1 (rows alike),
    # plus the offsets: one low-resolution pixel is 2 / W there.
    cols = torch.arange(scale * width, device=offsets.device, dtype=dtype)
    rows = torch.arange(scale * height, device=offsets.device, dtype=dtype)
    cols = (2 * cols + 1) / (scale * width) - 1
    rows = (2 * rows + 1) / (scale * height) - 1
    x = cols[None, :] + 2 * moved[..., 0] / width
    y = rows[:, None] + 2 * moved[..., 1] / height
    return torch.stack([x, y], dim=-1)


def dysample(x: torch.Tensor, offsets: torch.Tensor, *, scale: int, groups: int) -> torch.Tensor:
    """Sample ``x`` (B, C, h, w) at DySample's points: (B, C, s*H, s*W).

    ``offsets`` (B, 2*g*s^2, H, W) as :func:`sampling_grid` takes them, on the grid of
    the low-resolution map they were predicted from. ``x`` is usually that map (h, w =
    H, W: DySample); it may have another size covering the same image (FreqFusion
    resamples the already upsampled map, h = 2H), as ``grid_sample``'s coordinates are
    relative. Channel group k (channels k*C/g .. (k+1)*C/g - 1) is sampled at group k's
    points. Bilinear, ``align_corners=False``, border padding.

    Raises ``ValueError`` when C is not a multiple of ``groups`` or the batches differ.
    """
    batch, channels, height, width = x.shape
    if channels % groups:
        raise ValueError(f"{channels} channels cannot be split into {groups} groups")
    if offsets.shape[0] != batch:
        raise ValueError(f"offsets batch {offsets.shape[0]} != features batch {batch}")
    grid = sampling_grid(offsets, scale=scale, groups=groups, dtype=x.dtype)
    out = F.grid_sample(
        x.reshape(batch * groups, channels // groups, height, width),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return out.reshape(batch, channels, grid.shape[1], grid.shape[2])
