"""FreqFusion: widths, the two initialisations, kernel prediction, the sampler, GMACs."""

from __future__ import annotations

import math

import pytest
import torch

import nrdseg
from nrdseg.analysis.flops import model_flops
from nrdseg.models.freqfusion import FreqFusion, compressed_width
from nrdseg.ops.carafe import reassemble, sharpen
from tests.conftest import tiny_options


def _maps(channels: int = 16, batch: int = 2, height: int = 4, width: int = 5):
    hr = torch.randn(batch, channels, 2 * height, 2 * width)
    lr = torch.randn(batch, channels, height, width)
    return hr, lr


@pytest.mark.parametrize(
    ("hr", "lr", "width"),
    [(128, 128, 64), (256, 256, 128), (256, 512, 192), (100, 60, 40), (36, 36, 16), (12, 12, 8)],
)
def test_compressed_width_is_a_quarter_of_both_rounded_to_8(hr, lr, width):
    assert compressed_width(hr, lr) == width
    fusion = FreqFusion(hr, lr)
    assert fusion.hr_compressor.out_channels == width
    assert fusion.sampler.norm_hr.num_groups == width // 8


def test_paper_init_starts_near_identity_and_released_does_not():
    """With "paper", box-filter kernels and a near-still sampler (hundredths of a pixel):
    the output is hr sharpened by a 3x3 box beside lr reassembled by a 5x5 box. With
    "released", the same kernels, but the sampler's Xavier convs move points by a good part
    of a pixel from the start."""
    hr, lr = _maps()
    moves = {}
    for init in ("paper", "released"):
        torch.manual_seed(0)
        fusion = FreqFusion(16, 16, init=init).eval()
        for encoder in (fusion.lowpass_encoder, fusion.highpass_encoder):
            assert encoder.weight.std().item() == pytest.approx(1e-3, rel=0.3)
        fan = (16 + 8) * 9
        offset_std = fusion.sampler.lr_offset.weight.std().item()
        with torch.no_grad():
            hr_c, lr_c = fusion.hr_compressor(hr), fusion.lr_compressor(lr)
            lowpass, highpass, sharpened, _ = fusion.kernels(hr_c, lr_c, lr)
            moves[init] = fusion.sampler.offsets(sharpened, lr_c).abs().max().item()
            out = fusion(hr, lr)
        torch.testing.assert_close(lowpass, torch.full_like(lowpass, 1 / 25), atol=5e-3, rtol=0)
        torch.testing.assert_close(highpass, torch.full_like(highpass, 1 / 9), atol=5e-3, rtol=0)
        box9, box25 = torch.full((2, 9, 8, 10), 1 / 9), torch.full((2, 25, 8, 10), 1 / 25)
        torch.testing.assert_close(out[:, :16], sharpen(hr, box9), atol=0.05, rtol=0)
        if init == "paper":
            assert offset_std == pytest.approx(1e-3, rel=0.3)
            assert torch.all(fusion.sampler.lr_scope.weight == 0)
            torch.testing.assert_close(
                out[:, 16:], reassemble(lr, box25, scale=2), atol=0.05, rtol=0
            )
        else:  # xavier uniform: std sqrt(2 / (fan_in + fan_out))
            expected = math.sqrt(2 / (fan + 32 * 9))
            assert offset_std == pytest.approx(expected, rel=0.1)
    assert moves["paper"] < 0.1 < 1 < moves["released"]


def test_kernels_are_softmax_normalised_at_the_high_resolution():
    hr, lr = _maps()
    fusion = FreqFusion(16, 16)
    with torch.no_grad():
        for encoder in (fusion.lowpass_encoder, fusion.highpass_encoder):
            encoder.weight.normal_(0, 0.3)  # far from the uniform start
        hr_c, lr_c = fusion.hr_compressor(hr), fusion.lr_compressor(lr)
        lowpass, highpass, _, upsampled = fusion.kernels(hr_c, lr_c, lr)
    assert lowpass.shape == (2, 25, 8, 10) and highpass.shape == (2, 9, 8, 10)
    torch.testing.assert_close(upsampled, reassemble(lr, lowpass, scale=2))
    for kernels in (lowpass, highpass):
        assert torch.all(kernels > 0)
        torch.testing.assert_close(kernels.sum(dim=1), torch.ones(2, 8, 10))
        assert kernels.std(dim=1).mean() > 0.01  # not uniform: the logits did something


def test_initial_fusion_is_the_generator_of_the_fused_map_for_1x1_generators():
    """The kernels' logits are E(hr') + reassemble(E(lr_c)), which for a 1x1 generator E is
    exactly E(hr' + reassemble(lr_c)): the paper's Z = hr' + up(lr), bias counted once."""
    hr, lr = _maps()
    fusion = FreqFusion(16, 16, encoder_kernel=1).double()
    hr, lr = hr.double(), lr.double()
    with torch.no_grad():
        for encoder in (fusion.lowpass_encoder, fusion.highpass_encoder):
            encoder.weight.normal_(0, 0.3)
            encoder.bias.normal_(0, 0.3)
        hr_c, lr_c = fusion.hr_compressor(hr), fusion.lr_compressor(lr)
        lowpass, highpass, sharpened, _ = fusion.kernels(hr_c, lr_c, lr)
        initial = fusion.lowpass_encoder(sharpened).softmax(dim=1)
        fused = sharpened + reassemble(lr_c, initial, scale=2)
        expected_lowpass = fusion.lowpass_encoder(fused).softmax(dim=1)
        highpass_hr = fusion.highpass_encoder(hr_c)  # the high-pass's own hr part: unsharpened
        expected_highpass = (
            highpass_hr
            + fusion.highpass_encoder(reassemble(lr_c, lowpass, scale=2))
            - fusion.highpass_encoder.bias[:, None, None]
        ).softmax(dim=1)
    torch.testing.assert_close(sharpened, sharpen(hr_c, highpass_hr.softmax(dim=1)))
    torch.testing.assert_close(lowpass, expected_lowpass)
    torch.testing.assert_close(highpass, expected_highpass)


def test_sampler_with_zero_offsets_keeps_the_upsampled_map():
    """Offsets at the low resolution, sampling the x2 map: zero offsets read each pixel."""
    hr, lr = _maps()
    fusion = FreqFusion(16, 16, init="released")
    upsampled = torch.randn(2, 16, 8, 10)
    with torch.no_grad():
        for conv in (fusion.sampler.lr_offset, fusion.sampler.hr_offset):
            conv.weight.zero_()
            conv.bias.zero_()
        out = fusion.sampler(fusion.hr_compressor(hr), fusion.lr_compressor(lr), upsampled)
    torch.testing.assert_close(out, upsampled, atol=1e-6, rtol=0)


def test_sum_fuses_the_two_halves_of_concat():
    hr, lr = _maps()
    torch.manual_seed(1)
    concat = FreqFusion(16, 16, fuse="concat").eval()
    summed = FreqFusion(16, 16, fuse="sum").eval()
    summed.load_state_dict(concat.state_dict())
    with torch.no_grad():
        both = concat(hr, lr)
        torch.testing.assert_close(summed(hr, lr), both[:, :16] + both[:, 16:])
    assert concat.out_channels == 32 and summed.out_channels == 16
    plain = FreqFusion(16, 16, feature_resample=False)
    assert plain.sampler is None and plain(hr, lr).shape == (2, 32, 8, 10)


def test_bad_options_and_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="needs equal widths"):
        FreqFusion(16, 32, fuse="sum")
    with pytest.raises(ValueError, match="fuse must be one of"):
        FreqFusion(16, 16, fuse="add")
    with pytest.raises(ValueError, match="init must be one of"):
        FreqFusion(16, 16, init="xavier")
    with pytest.raises(ValueError, match="must be odd"):
        FreqFusion(16, 16, lowpass_kernel=4)
    with pytest.raises(ValueError, match="half its size"):
        FreqFusion(16, 16)(torch.randn(1, 16, 8, 8), torch.randn(1, 16, 3, 4))
    with pytest.raises(ValueError, match="init must be one of"):
        nrdseg.create_model(
            "freqfusion_r50", num_classes=3, init="x", **tiny_options("freqfusion_r50")
        )


def test_released_init_reaches_the_zoo_row():
    name = "freqfusion_r50"
    model = nrdseg.create_model(name, num_classes=3, init="released", **tiny_options(name))
    sampler = model.decoder.fusions[0].sampler
    assert sampler.lr_scope.weight.abs().max() > 0.01  # xavier, not the paper's zero


def _fusion_macs(channels: int, lr_pixels: int) -> int:
    """One FreqFusion step at equal widths C, c = C / 2, lr at P pixels, hr at 4 P."""
    c, hr = channels // 2, 4 * lr_pixels
    compress = (hr + lr_pixels) * channels * c
    generators = hr * c * 9 * 9 + hr * c * 9 * 25 + lr_pixels * c * 9 * (25 + 9)
    reassembly = hr * 9 * c + hr * 25 * (25 + 9) + hr * 25 * channels + hr * 9 * channels
    similarity = (hr + lr_pixels) * c * 9  # norms (c) + 8 dot products (8c) per pixel
    sampler = 2 * (hr * (c + 8) * 9 * 8 + lr_pixels * (c + 8) * 9 * 32) + hr * 4 * channels
    projection = hr * 2 * channels * channels
    return compress + generators + reassembly + similarity + sampler + projection


@pytest.mark.parametrize(("classes", "height", "width"), [(19, 1024, 2048), (150, 512, 512)])
def test_decoder_gmacs_are_the_hand_count(classes, height, width):
    """Laterals of the neck (512) and the stride-16/8/4 maps (1024/512/256) to 128, three
    fusions, the classifier: every reassembly, similarity and sampling term counted."""
    channels, cells = 128, (height // 32) * (width // 32)
    laterals = cells * channels * (512 + 4 * 1024 + 16 * 512 + 64 * 256)
    fusions = sum(_fusion_macs(channels, cells * 4**k) for k in range(3))
    expected = laterals + fusions + 64 * cells * channels * classes
    report = model_flops("freqfusion_r50", num_classes=classes, height=height, width=width)
    assert report.decoder == pytest.approx(expected / 1e9, rel=1e-9)
