"""Procedural label maps for the patch tests: blobs, rings, bars and thin lines."""

from __future__ import annotations

import torch


def random_label_maps(
    count: int, *, size: tuple[int, int], num_classes: int, seed: int = 0, ignore_border: int = 0
) -> list[torch.Tensor]:
    """``count`` (H, W) int64 maps with structure at several scales; 255 on a border."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    def cls() -> int:
        return int(torch.randint(num_classes, (), generator=generator))

    maps = []
    for _ in range(count):
        label = torch.full(size, cls(), dtype=torch.int64)
        for _ in range(6):
            cy, cx = uniform(0, height), uniform(0, width)
            radius = uniform(3, min(size) / 3)
            dist = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()
            shape = int(torch.randint(3, (), generator=generator))
            if shape == 0:  # disc
                label[dist < radius] = cls()
            elif shape == 1:  # ring
                label[(dist - radius).abs() < uniform(1, 3)] = cls()
            else:  # line through (cy, cx)
                angle = uniform(0, 3.1416)
                normal = (ys - cy) * torch.cos(torch.tensor(angle)) - (xs - cx) * torch.sin(
                    torch.tensor(angle)
                )
                label[normal.abs() < uniform(0.5, 2)] = cls()
        if ignore_border:
            label[:ignore_border] = 255
        maps.append(label)
    return maps
