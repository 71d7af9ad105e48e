"""FreqFusion's local cosine similarity against a pixel loop."""

from __future__ import annotations

import pytest
import torch

from nrdseg.ops.local_similarity import NEIGHBOURS, local_cosine_similarity


def reference_similarity(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """Pixel by pixel: a . b / (max(|a|, eps) max(|b|, eps)), 0 for a neighbour outside."""
    batch, _, height, width = x.shape
    x = x.double()
    out = torch.zeros(batch, 8, height, width, dtype=torch.float64)
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                centre = x[b, :, i, j]
                for n, (dy, dx) in enumerate(NEIGHBOURS):
                    y, x_ = i + dy * dilation, j + dx * dilation
                    if 0 <= y < height and 0 <= x_ < width:
                        other = x[b, :, y, x_]
                        scale = centre.norm().clamp_min(1e-12) * other.norm().clamp_min(1e-12)
                        out[b, n, i, j] = (centre * other).sum() / scale
    return out


@pytest.mark.parametrize(("dilation", "height", "width"), [(2, 5, 7), (1, 4, 3), (2, 1, 6)])
def test_similarity_matches_a_pixel_loop(dilation, height, width):
    x = torch.randn(2, 5, height, width, dtype=torch.float64)
    x[0, :, 0, 0] = 0  # a zero vector: similarity 0 with everything, no NaN
    out = local_cosine_similarity(x, dilation=dilation)
    assert out.shape == (2, 8, height, width)
    torch.testing.assert_close(out, reference_similarity(x, dilation))


def test_similarity_is_one_for_parallel_neighbours_and_scale_free():
    x = torch.rand(1, 3, 1, 1).expand(1, 3, 6, 6) * torch.rand(1, 1, 6, 6).add(0.5)
    out = local_cosine_similarity(x, dilation=2)
    torch.testing.assert_close(out[:, :, 2:4, 2:4], torch.ones(1, 8, 2, 2))
    torch.testing.assert_close(local_cosine_similarity(7 * x), out)
