"""SAPA's window similarity and kernels against pixel loops."""

from __future__ import annotations

import math

import pytest
import torch

from nrdseg.ops.sapa import similarity_kernels, window_similarity


def reference_similarities(query: torch.Tensor, key: torch.Tensor, k: int, scale: int):
    """Pixel by pixel, tap by tap: the query's inner product with each key of the window
    around its parent, and whether that key lies inside the map."""
    batch, _, high_h, high_w = query.shape
    height, width = key.shape[-2:]
    r = k // 2
    logits = torch.zeros(batch, k * k, high_h, high_w, dtype=torch.float64)
    inside = torch.zeros(k * k, high_h, high_w, dtype=torch.bool)
    for i in range(high_h):
        for j in range(high_w):
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    y, x = i // scale + dy, j // scale + dx
                    if 0 <= y < height and 0 <= x < width:
                        n = (dy + r) * k + dx + r
                        inside[n, i, j] = True
                        products = query[:, :, i, j].double() * key[:, :, y, x].double()
                        logits[:, n, i, j] = products.sum(dim=1)
    return logits, inside


def reference_kernels(query: torch.Tensor, key: torch.Tensor, k: int, scale: int):
    """exp(similarity) over the taps inside the map, divided by their sum; 0 outside."""
    logits, inside = reference_similarities(query, key, k, scale)
    kernels = torch.zeros_like(logits)
    for b in range(logits.shape[0]):
        for i in range(logits.shape[-2]):
            for j in range(logits.shape[-1]):
                taps = inside[:, i, j]
                weights = logits[b, taps, i, j].exp()
                kernels[b, taps, i, j] = weights / weights.sum()
    return kernels


CASES = [(1, 1, 1, 3, 2), (2, 3, 4, 5, 2), (1, 4, 2, 3, 3), (2, 2, 3, 1, 2), (1, 2, 2, 7, 2)]


@pytest.mark.parametrize(("batch", "height", "width", "k", "scale"), CASES)
def test_window_similarity_matches_reference(batch, height, width, k, scale):
    query = torch.randn(batch, 6, height * scale, width * scale)
    key = torch.randn(batch, 6, height, width)
    out = window_similarity(query, key, kernel_size=k, scale=scale)
    expected, _ = reference_similarities(query, key, k, scale)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("batch", "height", "width", "k", "scale"), CASES)
def test_similarity_kernels_match_reference(batch, height, width, k, scale):
    query = torch.randn(batch, 6, height * scale, width * scale)
    key = torch.randn(batch, 6, height, width)
    out = similarity_kernels(query, key, kernel_size=k, scale=scale)
    torch.testing.assert_close(out.double(), reference_kernels(query, key, k, scale))
    torch.testing.assert_close(out.sum(dim=1), torch.ones_like(out[:, 0]))


def test_one_pixel_map_puts_all_weight_on_its_centre():
    kernels = similarity_kernels(torch.randn(1, 4, 2, 2), torch.randn(1, 4, 1, 1), kernel_size=5)
    centre = 12
    assert torch.equal(kernels[:, centre], torch.ones(1, 2, 2))
    assert kernels.sum() == 4


def test_similarity_gradients():
    query = torch.randn(1, 2, 2, 4, dtype=torch.float64, requires_grad=True)
    key = torch.randn(1, 2, 1, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda q, k: similarity_kernels(q, k, kernel_size=3), (query, key)
    )


def test_bad_arguments_raise_clear_errors():
    query, key = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 3, 3)
    with pytest.raises(ValueError, match="odd"):
        window_similarity(query, key, kernel_size=4)
    with pytest.raises(ValueError, match=r"upsampled x2 \(same batch and embedding channels\)"):
        similarity_kernels(query[:, :3], key, kernel_size=3)
    with pytest.raises(ValueError, match="upsampled x3"):
        similarity_kernels(query, key, kernel_size=3, scale=3)
    assert math.isqrt(window_similarity(query, key, kernel_size=3).shape[1]) == 3
