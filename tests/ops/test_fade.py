"""FADE's operators against pixel loops: semi-shift convolution and the gate."""

from __future__ import annotations

import pytest
import torch

from nrdseg.ops.fade import gated_blend, parent_values, semi_shift_conv


def nearest_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Pixel by pixel: each high-res pixel copies its parent."""
    batch, channels, height, width = x.shape
    out = torch.empty(batch, channels, height * scale, width * scale, dtype=x.dtype)
    for i in range(height * scale):
        for j in range(width * scale):
            out[:, :, i, j] = x[:, :, i // scale, j // scale]
    return out


def reference_semi_shift_conv(encoder, decoder, encoder_weight, decoder_weight, bias, scale):
    """Upsample the decoder map, then per output pixel: a k x k window that moves with the
    pixel on the encoder map, and on the upsampled decoder map a k x k window of taps
    ``scale`` apart anchored at the parent's block, which moves only every ``scale``
    pixels (the "semi-shift"). Zero outside either map."""
    upsampled = nearest_upsample(decoder, scale)
    batch, _, high_h, high_w = encoder.shape
    k = encoder_weight.shape[-1]
    r = k // 2
    out = torch.zeros(batch, encoder_weight.shape[0], high_h, high_w, dtype=torch.float64)
    for i in range(high_h):
        for j in range(high_w):
            if bias is not None:
                out[:, :, i, j] += bias.double()
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if 0 <= i + dy < high_h and 0 <= j + dx < high_w:
                        tap = encoder[:, :, i + dy, j + dx].double()
                        out[:, :, i, j] += tap @ encoder_weight[:, :, dy + r, dx + r].double().T
                    y = scale * (i // scale + dy)
                    x = scale * (j // scale + dx)
                    if 0 <= y < high_h and 0 <= x < high_w:
                        tap = upsampled[:, :, y, x].double()
                        out[:, :, i, j] += tap @ decoder_weight[:, :, dy + r, dx + r].double().T
    return out


@pytest.mark.parametrize(
    ("batch", "height", "width", "k", "scale", "with_bias"),
    [(1, 1, 1, 3, 2, True), (2, 3, 4, 3, 2, True), (1, 4, 2, 5, 2, False), (2, 2, 3, 1, 3, True)],
)
def test_semi_shift_conv_matches_reference(batch, height, width, k, scale, with_bias):
    encoder = torch.randn(batch, 3, height * scale, width * scale)
    decoder = torch.randn(batch, 4, height, width)
    encoder_weight = torch.randn(5, 3, k, k)
    decoder_weight = torch.randn(5, 4, k, k)
    bias = torch.randn(5) if with_bias else None
    out = semi_shift_conv(
        encoder,
        decoder,
        encoder_weight=encoder_weight,
        decoder_weight=decoder_weight,
        bias=bias,
        scale=scale,
    )
    expected = reference_semi_shift_conv(
        encoder, decoder, encoder_weight, decoder_weight, bias, scale
    )
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-4)


def test_semi_shift_children_share_the_decoder_term():
    """With no encoder weight, the s x s children of a low-res pixel get one value."""
    decoder = torch.randn(1, 4, 3, 3)
    out = semi_shift_conv(
        torch.randn(1, 2, 6, 6),
        decoder,
        encoder_weight=torch.zeros(3, 2, 3, 3),
        decoder_weight=torch.randn(3, 4, 3, 3),
    )
    torch.testing.assert_close(out, parent_values(out[:, :, ::2, ::2], scale=2))
    assert not torch.allclose(out[:, :, ::2, ::2], out[:, :, ::2, ::2].mean())


def reference_gated_blend(encoder, upsampled, gate_logits, scale):
    out = torch.empty_like(encoder, dtype=torch.float64)
    for i in range(encoder.shape[-2]):
        for j in range(encoder.shape[-1]):
            gate = torch.sigmoid(gate_logits[:, :, i // scale, j // scale].double())
            out[:, :, i, j] = gate * encoder[:, :, i, j] + (1 - gate) * upsampled[:, :, i, j]
    return out


@pytest.mark.parametrize(("gate_channels", "scale"), [(1, 2), (3, 2), (1, 3)])
def test_gated_blend_matches_reference(gate_channels, scale):
    encoder = torch.randn(2, 3, 2 * scale, 3 * scale, dtype=torch.float64)
    upsampled = torch.randn(2, 3, 2 * scale, 3 * scale, dtype=torch.float64)
    gate_logits = 3 * torch.randn(2, gate_channels, 2, 3, dtype=torch.float64)
    out = gated_blend(encoder, upsampled, gate_logits, scale=scale)
    torch.testing.assert_close(out, reference_gated_blend(encoder, upsampled, gate_logits, scale))


def test_mismatched_maps_raise_clear_errors():
    weight = torch.randn(2, 3, 3, 3)
    with pytest.raises(ValueError, match=r"upsampled x2 \(same batch, 8x8\)"):
        semi_shift_conv(
            torch.randn(1, 3, 8, 6),
            torch.randn(1, 3, 4, 4),
            encoder_weight=weight,
            decoder_weight=weight,
        )
    with pytest.raises(ValueError, match="one shape to be blended"):
        gated_blend(torch.randn(1, 3, 4, 4), torch.randn(1, 2, 4, 4), torch.randn(1, 1, 2, 2))
