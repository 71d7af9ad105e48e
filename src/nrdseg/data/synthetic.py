"""Procedural scenes with fine structures: the built-in dataset for CPU demos and tests.

Each sample is drawn from its own random stream (seed, split, index), so it is the same in
every run and worker and train and val differ. The label map holds large regions (one
plain, one striped: told apart by texture as much as colour), thin lines 1-3 px wide,
rings 1-3 px thick and dots of a few pixels. The image is rendered from it: per-class
colours jittered per image, stripes, a background gradient and pixel noise. Thin classes
vanish at stride 32, so they reward decoders that work at full resolution.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

from nrdseg.data.base import SegDataset, Transform

SYNTHETIC_CLASSES = ["background", "region", "striped region", "line", "ring", "dot"]
BACKGROUND, REGION, STRIPED, LINE, RING, DOT = range(len(SYNTHETIC_CLASSES))

#: The rendering colours, also the palette.
SYNTHETIC_PALETTE = [
    [96, 104, 88], [60, 120, 190], [150, 110, 170], [235, 205, 50], [220, 70, 60],
    [245, 245, 245],
]  # fmt: skip


class Canvas:
    """A label map under construction; shapes paint only inside their bounding box."""

    def __init__(self, height: int, width: int) -> None:
        self.label = np.zeros((height, width), dtype=np.uint8)
        self.ys = np.arange(height, dtype=np.float32)[:, None]
        self.xs = np.arange(width, dtype=np.float32)[None, :]

    def _window(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice]:
        height, width = self.label.shape
        rows = slice(max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, height))
        cols = slice(max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, width))
        return rows, cols

    def _paint(self, rows: slice, cols: slice, inside: np.ndarray, value: int) -> None:
        self.label[rows, cols][inside] = value

    def ellipse(self, cy: float, cx: float, ry: float, rx: float, angle: float, value: int) -> None:
        reach = max(ry, rx)
        rows, cols = self._window(cy - reach, cy + reach, cx - reach, cx + reach)
        dy, dx = self.ys[rows] - cy, self.xs[:, cols] - cx
        cos, sin = np.cos(angle), np.sin(angle)
        u, v = (dx * cos + dy * sin) / rx, (dy * cos - dx * sin) / ry
        self._paint(rows, cols, u * u + v * v <= 1, value)

    def ring(self, cy: float, cx: float, radius: float, thickness: float, value: int) -> None:
        reach = radius + thickness
        rows, cols = self._window(cy - reach, cy + reach, cx - reach, cx + reach)
        dist = np.hypot(self.ys[rows] - cy, self.xs[:, cols] - cx)
        self._paint(rows, cols, np.abs(dist - radius) <= thickness / 2, value)

    def segment(self, p: np.ndarray, q: np.ndarray, width: float, value: int) -> None:
        half = width / 2
        rows, cols = self._window(
            min(p[0], q[0]) - half, max(p[0], q[0]) + half,
            min(p[1], q[1]) - half, max(p[1], q[1]) + half,
        )  # fmt: skip
        dy, dx = self.ys[rows] - p[0], self.xs[:, cols] - p[1]
        direction = q - p
        t = np.clip(
            (dy * direction[0] + dx * direction[1]) / max(direction @ direction, 1e-6), 0, 1
        )
        dist = np.hypot(dy - t * direction[0], dx - t * direction[1])
        self._paint(rows, cols, dist <= half, value)


def draw_label(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random scene: regions first, then rings, lines and dots on top."""
    canvas = Canvas(height, width)
    side = min(height, width)
    density = max(height * width / 128**2, 1.0)
    for value, count in ((REGION, rng.integers(1, 4)), (STRIPED, rng.integers(1, 3))):
        for _ in range(count):
            canvas.ellipse(
                rng.uniform(0, height), rng.uniform(0, width),
                rng.uniform(0.1, 0.3) * side, rng.uniform(0.1, 0.3) * side,
                rng.uniform(0, np.pi), value,
            )  # fmt: skip
    for _ in range(int(rng.integers(1, 4) * density)):
        canvas.ring(
            rng.uniform(0, height), rng.uniform(0, width),
            rng.uniform(0.05, 0.2) * side, rng.integers(1, 4), RING,
        )  # fmt: skip
    size = np.array([height, width], dtype=np.float64)
    for _ in range(int(rng.integers(2, 6) * density)):
        start = rng.uniform(0, 1, 2) * size
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.8) * side
        end = start + length * np.array([np.sin(angle), np.cos(angle)])
        canvas.segment(start, end, float(rng.integers(1, 4)), LINE)
    for _ in range(int(rng.integers(3, 9) * density)):
        radius = rng.uniform(1.5, 4)
        canvas.ellipse(rng.uniform(0, height), rng.uniform(0, width), radius, radius, 0, DOT)
    return canvas.label


def render_image(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3): jittered class colours, stripes, gradient, noise."""
    height, width = label.shape
    colours = np.array(SYNTHETIC_PALETTE, dtype=np.float32) + rng.normal(0, 18, (6, 3))
    image = colours[label]
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (ys * np.sin(angle) + xs * np.cos(angle)) / max(height, width)
    background = label == BACKGROUND
    image[background] += (rng.uniform(20, 50) * ramp)[background][:, None]
    striped = label == STRIPED
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 8)
    stripes = np.sin(2 * np.pi * (ys * np.sin(angle) + xs * np.cos(angle)) / period)
    image[striped] += 40 * stripes[striped][:, None]
    image += rng.normal(0, rng.uniform(6, 14), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


class SyntheticDataset(SegDataset):
    """``length`` procedural samples of ``size`` (H, W); see the module docstring."""

    def __init__(
        self,
        *,
        split: str = "train",
        size: Sequence[int] = (128, 128),
        length: int = 256,
        seed: int = 0,
        transforms: Transform | None = None,
    ) -> None:
        if len(size) != 2 or not all(isinstance(s, int) and s >= 16 for s in size):
            raise ValueError(f"size must be (H, W) with both >= 16, got {size!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        super().__init__(
            classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE, transforms=transforms
        )
        self.split = split
        self.size = (int(size[0]), int(size[1]))
        self.length = length
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), index])

    def load_label(self, index: int) -> np.ndarray:
        """The scene's labels without rendering its image (they are drawn first)."""
        return draw_label(self._rng(index), *self.size)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        rng = self._rng(index)
        label = draw_label(rng, *self.size)
        image = render_image(rng, label)
        path = f"synthetic/{self.split}/{index:06d}"
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(label), path
