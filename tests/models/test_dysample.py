"""DySample: the module's init, styles and scopes; its two zoo rows and their GMACs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nrdseg
from nrdseg.analysis.flops import model_flops
from nrdseg.models.dysample import DySample
from nrdseg.models.heads import DeepLabV3PlusDySampleHead, DeepLabV3PlusHead
from tests.conftest import tiny_options

VARIANTS = [("lp", False), ("lp", True), ("pl", False), ("pl", True)]


@pytest.mark.parametrize(("style", "dynamic_scope"), VARIANTS)
@pytest.mark.parametrize("scale", [2, 4])
def test_init_is_bilinear_and_exactly_so_without_the_offset_weights(style, dynamic_scope, scale):
    module = DySample(32, scale=scale, groups=4, style=style, dynamic_scope=dynamic_scope)
    assert module.offset.weight.std().item() == pytest.approx(1e-3, rel=0.3)
    assert torch.all(module.offset.bias == 0)
    if dynamic_scope:
        assert torch.all(module.scope.weight == 0)
    x = torch.randn(2, 32, 5, 6)
    bilinear = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    with torch.no_grad():
        # N(0, 0.001) weights on unit features: offsets of ~1e-3 * sqrt(C) * scope pixels
        offsets = module.offsets(x)
        assert offsets.abs().max() < 0.01
        torch.testing.assert_close(module(x), bilinear, atol=0.1, rtol=0)
        module.offset.weight.zero_()
        torch.testing.assert_close(module(x), bilinear, atol=1e-5, rtol=0)


def test_dynamic_scope_starts_at_the_static_quarter():
    static = DySample(16, scale=2, style="lp")
    dynamic = DySample(16, scale=2, style="lp", dynamic_scope=True)
    dynamic.offset.load_state_dict(static.offset.state_dict())
    x = torch.randn(1, 16, 3, 3)
    torch.testing.assert_close(dynamic.offsets(x), static.offsets(x))


@pytest.mark.parametrize("scale", [2, 4])
def test_pl_style_has_s4_fewer_offset_weights_and_the_same_offset_layout(scale):
    lp = DySample(64, scale=scale, groups=4, style="lp")
    pl = DySample(64, scale=scale, groups=4, style="pl")
    assert lp.offset.weight.numel() == scale**4 * pl.offset.weight.numel()
    # a "pl" offset conv with only a bias on channel x of group 1 moves exactly that group
    with torch.no_grad():
        pl.offset.weight.zero_()
        pl.offset.bias.zero_()
        pl.offset.bias[1] = 4.0  # x/y-major, then group: channel 1 is x of group 1
    offsets = pl.offsets(torch.randn(1, 64, 2, 3))
    assert offsets.shape == (1, 2 * 4 * scale**2, 2, 3)
    moved = torch.zeros_like(offsets)
    moved[:, scale**2 : 2 * scale**2] = 4.0 * 0.25
    torch.testing.assert_close(offsets, moved)


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="style"):
        DySample(8, style="pp")
    with pytest.raises(ValueError, match="groups=3 must divide"):
        DySample(8, groups=3)
    with pytest.raises(ValueError, match="multiple of scale\\^2 = 64"):
        DySample(32, scale=8, style="pl")
    with pytest.raises(ValueError, match="scale must be an integer >= 2"):
        DySample(8, scale=1)


@pytest.mark.parametrize("name", ["dysample_r50", "dlv3p_dysample_r50"])
def test_upsample_scales_must_reach_stride_4(name):
    with pytest.raises(ValueError, match="upsample_scales \\[2, 2, 2\\] upsample x8.*x4 coarser"):
        nrdseg.create_model(name, num_classes=3, output_stride=16, **tiny_options(name))
    model = nrdseg.create_model(
        name, num_classes=3, upsample_scales=(8,), style="lp", **tiny_options(name)
    ).eval()
    assert len(model.decoder.upsampler) == 1 and model.decoder.upsampler[0].scale == 8
    native, _ = model.decode_padded(torch.randn(1, 3, 64, 96))
    assert native.shape == (1, 3, 16, 24)


def test_dlv3p_dysample_is_deeplabv3plus_with_dysample_in_place_of_bilinear():
    """Same layers as DeepLabV3+ plus ``upsampler``. With the offsets zeroed, one x8 step
    gives DeepLabV3+'s logits; three x2 steps give three bilinear x2 steps, which is not
    one bilinear x8 (a wider, smoother filter)."""
    options = {"in_channels": 32, "low_level_channels": 16, "num_classes": 3, "channels": 24}
    plain = DeepLabV3PlusHead(**options).eval()
    x, low = torch.randn(2, 32, 3, 4), torch.randn(2, 16, 24, 32)
    for scales in ((8,), (2, 2, 2)):
        learned = DeepLabV3PlusDySampleHead(**options, upsample_scales=scales, style="lp").eval()
        extra = set(learned.state_dict()) - set(plain.state_dict())
        assert set(plain.state_dict()) < set(learned.state_dict())
        assert all(key.startswith("upsampler.") for key in extra)
        learned.load_state_dict(plain.state_dict(), strict=False)
        with torch.no_grad():
            moved = learned(x, low)
            for step in learned.upsampler:
                step.offset.weight.zero_()
            bilinear = x
            for scale in scales:
                bilinear = F.interpolate(
                    bilinear, scale_factor=scale, mode="bilinear", align_corners=False
                )
            torch.testing.assert_close(learned.upsample(x, low.shape[-2:]), bilinear)
            assert not torch.allclose(moved, learned(x, low), atol=1e-7)
            if scales == (8,):
                torch.testing.assert_close(learned(x, low), plain(x, low))
            else:
                assert not torch.allclose(learned(x, low), plain(x, low), atol=1e-5)


def _dysample_macs(*, cells: int, classes: int) -> dict[str, int]:
    """Hand counts at ResNet-50 widths (neck 512 at stride 32, stride4 256), 3 x2 "pl" steps."""
    outputs = [cells * 4, cells * 16, cells * 64]  # each step's output pixels
    # per step at its output: offset and scope 1x1 convs 512/4 -> 2*4, bilinear 4 taps x 512
    steps = sum(p * (2 * 128 * 8 + 4 * 512) for p in outputs)
    stride4 = cells * 64
    dlv3p = stride4 * (  # 1x1 256 -> 48; two separable convs (dw 3x3 + pw); classifier
        256 * 48 + (560 * 9 + 560 * 512) + (512 * 9 + 512 * 512) + 512 * classes
    )
    return {"dysample_r50": steps + stride4 * 512 * classes, "dlv3p_dysample_r50": steps + dlv3p}


@pytest.mark.parametrize("name", ["dysample_r50", "dlv3p_dysample_r50"])
@pytest.mark.parametrize(("classes", "height", "width"), [(19, 1024, 2048), (150, 512, 512)])
def test_decoder_gmacs_are_the_hand_count(name, classes, height, width):
    report = model_flops(name, num_classes=classes, height=height, width=width)
    expected = _dysample_macs(cells=(height // 32) * (width // 32), classes=classes)[name]
    assert report.decoder == pytest.approx(expected / 1e9, rel=1e-9)
