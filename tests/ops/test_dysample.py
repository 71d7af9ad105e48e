"""DySample's sampling against a manual bilinear loop; zero offsets are bilinear upsampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nrdseg.ops.dysample import dysample, sampling_grid


def bilinear_at(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """(C, H, W) read at (y, x) in pixel units, the coordinate clamped to the map (border)."""
    height, width = image.shape[-2:]
    y = min(max(y, 0.0), height - 1.0)
    x = min(max(x, 0.0), width - 1.0)
    y0, x0 = math.floor(y), math.floor(x)
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    fy, fx = y - y0, x - x0
    return (
        image[:, y0, x0] * (1 - fy) * (1 - fx)
        + image[:, y0, x1] * (1 - fy) * fx
        + image[:, y1, x0] * fy * (1 - fx)
        + image[:, y1, x1] * fy * fx
    )


def reference_dysample(x: torch.Tensor, offsets: torch.Tensor, scale: int, groups: int):
    """Pixel by pixel: output (s*h + i, s*w + j) of group k reads x at parent centre + fixed
    sub-pixel position + offset (channels [x/y][group][i*s + j], low-res pixel units)."""
    batch, channels, x_height, x_width = x.shape
    height, width = offsets.shape[-2:]
    per_group = channels // groups
    out = torch.zeros(batch, channels, scale * height, scale * width, dtype=torch.float64)
    for b in range(batch):
        for k in range(groups):
            image = x[b, k * per_group : (k + 1) * per_group].double()
            for h in range(height):
                for w in range(width):
                    for i in range(scale):
                        for j in range(scale):
                            sub = i * scale + j
                            dx = offsets[b, k * scale**2 + sub, h, w].item()
                            dy = offsets[b, (groups + k) * scale**2 + sub, h, w].item()
                            px = w + (j - (scale - 1) / 2) / scale + dx  # low-res pixels
                            py = h + (i - (scale - 1) / 2) / scale + dy
                            # the same point in x's pixels (x may have another size)
                            px = (px + 0.5) * x_width / width - 0.5
                            py = (py + 0.5) * x_height / height - 0.5
                            value = bilinear_at(image, py, px)
                            out[
                                b, k * per_group : (k + 1) * per_group, scale * h + i, scale * w + j
                            ] = value
    return out


@pytest.mark.parametrize(
    ("batch", "channels", "height", "width", "scale", "groups", "x_factor"),
    [(1, 4, 3, 4, 2, 4, 1), (2, 6, 2, 3, 3, 2, 1), (1, 8, 2, 2, 4, 1, 1), (2, 8, 3, 2, 2, 4, 2)],
)
def test_sampling_matches_a_manual_bilinear_loop(
    batch, channels, height, width, scale, groups, x_factor
):
    """Random offsets of up to 1.5 pixels, so points leave the map (border clamping);
    x_factor 2 samples a map twice the offsets' size, as FreqFusion does."""
    x = torch.randn(batch, channels, height * x_factor, width * x_factor, dtype=torch.float64)
    offsets = 1.5 * torch.randn(batch, 2 * groups * scale**2, height, width, dtype=torch.float64)
    out = dysample(x, offsets, scale=scale, groups=groups)
    assert out.shape == (batch, channels, scale * height, scale * width)
    torch.testing.assert_close(out, reference_dysample(x, offsets, scale, groups))


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_zero_offsets_are_bilinear_upsampling_everywhere(scale):
    """Exact up to rounding on the whole map, borders included (border padding)."""
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    offsets = torch.zeros(2, 2 * 4 * scale**2, 5, 7, dtype=torch.float64)
    bilinear = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        dysample(x, offsets, scale=scale, groups=4), bilinear, atol=1e-12, rtol=0
    )


def test_border_padding_is_what_makes_the_border_exact():
    """Bilinear upsampling clamps its source coordinate to the map; with zero padding the
    outermost s/2 rows and columns would instead blend in zeros, and only those."""
    scale = 4
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64) + 5  # no value near 0
    grid = sampling_grid(
        torch.zeros(1, 2 * scale**2, 5, 6, dtype=torch.float64), scale=scale, groups=1
    )
    zeros = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    bilinear = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    differs = (zeros - bilinear).abs().amax(dim=1)[0] > 1e-9
    ring = torch.ones_like(differs)
    ring[scale // 2 : -(scale // 2), scale // 2 : -(scale // 2)] = False
    assert torch.equal(differs, ring)


def test_channel_order_x_then_y_then_group_then_sub_pixel():
    """Moving group 1's x by +1 pixel shifts only its channels one pixel to the left."""
    scale, groups = 2, 2
    x = torch.randn(1, 4, 4, 5, dtype=torch.float64)
    offsets = torch.zeros(1, 2 * groups * scale**2, 4, 5, dtype=torch.float64)
    offsets[:, scale**2 : 2 * scale**2] = 1.0  # x, group 1, every sub-pixel
    out = dysample(x, offsets, scale=scale, groups=groups)
    bilinear = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    shifted = F.interpolate(
        x[:, :, :, 1:], scale_factor=scale, mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out[:, :2], bilinear[:, :2])
    # away from the right border, where the shifted points leave the map
    torch.testing.assert_close(out[:, 2:, :, 1:-3], shifted[:, 2:, :, 1:-1])


def test_gradients_flow_to_features_and_offsets():
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    offsets = (0.3 * torch.randn(1, 2 * 2 * 4, 3, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, o: dysample(a, o, scale=2, groups=2), (x, offsets))


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="2 \\* groups \\* scale\\^2 = 32"):
        dysample(torch.randn(1, 4, 2, 2), torch.zeros(1, 16, 2, 2), scale=2, groups=4)
    with pytest.raises(ValueError, match="cannot be split into 4 groups"):
        dysample(torch.randn(1, 6, 2, 2), torch.zeros(1, 32, 2, 2), scale=2, groups=4)
    with pytest.raises(ValueError, match="batch"):
        dysample(torch.randn(2, 4, 2, 2), torch.zeros(1, 32, 2, 2), scale=2, groups=4)
