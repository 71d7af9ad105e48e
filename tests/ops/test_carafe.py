"""CARAFE: reassembly against a per-pixel loop, the head against reassembling features."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nrdseg.models.heads import CARAFEHead
from nrdseg.ops.carafe import reassemble, sharpen


def reference_reassemble(x: torch.Tensor, kernels: torch.Tensor, scale: int) -> torch.Tensor:
    """Output pixel by output pixel: weighted sum of the k x k window around its source."""
    batch, channels, height, width = x.shape
    k = math.isqrt(kernels.shape[1])
    r = k // 2
    out = torch.zeros(batch, channels, height * scale, width * scale, dtype=torch.float64)
    for b in range(batch):
        for i in range(height * scale):
            for j in range(width * scale):
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        y, x_ = i // scale + dy, j // scale + dx
                        if 0 <= y < height and 0 <= x_ < width:
                            weight = kernels[b, (dy + r) * k + (dx + r), i, j].double()
                            out[b, :, i, j] += weight * x[b, :, y, x_].double()
    return out


@pytest.mark.parametrize(
    ("batch", "channels", "height", "width", "scale", "k"),
    [(1, 1, 1, 1, 2, 3), (2, 3, 3, 4, 2, 5), (1, 2, 4, 2, 3, 3), (2, 4, 2, 3, 4, 1)],
)
def test_reassembly_matches_reference(batch, channels, height, width, scale, k):
    x = torch.randn(batch, channels, height, width)
    kernels = torch.randn(batch, k * k, height * scale, width * scale).softmax(dim=1)
    out = reassemble(x, kernels, scale=scale)
    assert out.shape == (batch, channels, height * scale, width * scale)
    torch.testing.assert_close(out.double(), reference_reassemble(x, kernels, scale))


def test_reassembly_gradients_match_reference():
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    kernels = torch.randn(2, 9, 6, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 3, 6, 4, dtype=torch.float64)
    (reassemble(x, kernels, scale=2) * weights).sum().backward()
    fast = x.grad.clone(), kernels.grad.clone()
    x.grad = kernels.grad = None
    (reference_reassemble(x, kernels, 2) * weights).sum().backward()
    torch.testing.assert_close(fast[0], x.grad)
    torch.testing.assert_close(fast[1], kernels.grad)


def test_bad_kernels_raise_clear_errors():
    x = torch.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="odd k"):
        reassemble(x, torch.rand(1, 4, 6, 6), scale=2)
    with pytest.raises(ValueError, match="upsampled x2"):
        reassemble(x, torch.rand(1, 9, 6, 5), scale=2)
    with pytest.raises(ValueError, match="odd"):
        CARAFEHead(in_channels=4, num_classes=2, up_kernel=4)


def test_head_equals_reassembling_the_features():
    """The head reassembles only projections; CARAFE on the features must give the same."""
    head = CARAFEHead(in_channels=6, num_classes=3, compressed_channels=4, up_kernel=3).double()
    with torch.no_grad():
        for encoder in head.encoders:
            encoder.weight.normal_(0, 0.5)  # far from the uniform initial kernels
    head.eval()
    x = torch.randn(2, 6, 2, 3, dtype=torch.float64)
    features = x
    with torch.no_grad():
        for compressor, encoder in zip(head.compressors, head.encoders, strict=True):
            kernels = F.pixel_shuffle(encoder(compressor(features)), 2).softmax(dim=1)
            features = reference_reassemble(features, kernels, 2)
        expected = head.classifier(features)
        out = head(x)
    assert out.shape == (2, 3, 16, 24)
    torch.testing.assert_close(out, expected)


def test_initial_kernels_are_box_filters():
    head = CARAFEHead(in_channels=8, num_classes=2).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        kernels = F.pixel_shuffle(head.encoders[0](head.compressors[0](x)), 2).softmax(dim=1)
    torch.testing.assert_close(kernels, torch.full_like(kernels, 1 / 25), atol=4e-3, rtol=0)


def test_sharpen_is_x_plus_its_high_pass_from_an_explicit_filter_loop():
    """FreqFusion's high-pass: kernel E - K (identity tap minus the low-pass K), added to x."""
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    kernels = torch.randn(2, 9, 4, 5, dtype=torch.float64).softmax(dim=1)
    expected = torch.empty_like(x)
    for b in range(2):
        for i in range(4):
            for j in range(5):
                high = x[b, :, i, j].clone()  # identity tap
                for n in range(9):
                    y, x_ = i + n // 3 - 1, j + n % 3 - 1
                    if 0 <= y < 4 and 0 <= x_ < 5:
                        high -= kernels[b, n, i, j] * x[b, :, y, x_]
                expected[b, :, i, j] = x[b, :, i, j] + high
    torch.testing.assert_close(sharpen(x, kernels), expected)
    # a constant map inside the borders has no high frequencies: sharpening keeps it
    flat = torch.full((1, 2, 5, 5), 3.0, dtype=torch.float64)
    box = torch.full((1, 9, 5, 5), 1 / 9, dtype=torch.float64)
    torch.testing.assert_close(sharpen(flat, box)[..., 1:-1, 1:-1], flat[..., 1:-1, 1:-1])
