"""FADE and SAPA upsamplers against pixel loops, their options, and their decoders' GMACs."""

from __future__ import annotations

import pytest
import torch

import nrdseg
from nrdseg.analysis.flops import model_flops
from nrdseg.models.heads.fade import FADE
from nrdseg.models.heads.sapa import SAPA
from nrdseg.ops.carafe import reassemble
from tests.conftest import tiny_options
from tests.ops.test_carafe import reference_reassemble
from tests.ops.test_fade import reference_gated_blend, reference_semi_shift_conv
from tests.ops.test_sapa import reference_kernels


def _perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """Double precision, every parameter moved off its init (biases, norms included)."""
    module = module.double()
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return module


def test_fade_matches_its_definition():
    """Semi-shift kernels (one content encoder for both halves), softmax, reassembly of
    the decoder map, the decoder's gate: each checked by its own loop."""
    fade = _perturbed(FADE(channels=4, compressed_channels=3, up_kernel=3))
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64)
    guide = torch.randn(2, 4, 6, 4, dtype=torch.float64)
    with torch.no_grad():
        weight = fade.content_encoder.weight
        logits = reference_semi_shift_conv(
            fade.compress_encoder(guide), fade.compress_decoder(x), weight, weight,
            fade.content_encoder.bias, 2,
        )  # fmt: skip
        upsampled = reference_reassemble(x, logits.softmax(dim=1), 2)
        expected = reference_gated_blend(guide, upsampled, fade.gate(x), 2)
        torch.testing.assert_close(fade(x, guide), expected)


def test_fade_gate_passes_the_encoder_or_the_reassembly():
    fade = FADE(channels=4, compressed_channels=3, up_kernel=3)
    x, guide = torch.randn(1, 4, 2, 3), torch.randn(1, 4, 4, 6)
    with torch.no_grad():
        fade.gate.weight.zero_()
        fade.gate.bias.fill_(40.0)
        torch.testing.assert_close(fade(x, guide), guide)
        fade.gate.bias.fill_(-40.0)
        torch.testing.assert_close(fade(x, guide), reassemble(x, fade.kernels(x, guide), scale=2))


def _layer_norm(v: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    """One pixel's channel vector, normalised by hand (biased variance, eps 1e-5)."""
    centred = v - v.mean()
    return centred / torch.sqrt((centred**2).mean() + norm.eps) * norm.weight + norm.bias


def _project(v: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.weight[:, :, 0, 0] @ v + conv.bias


def reference_sapa(sapa: SAPA, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Pixel by pixel: normalise and project each map, SAPA-G's gated query (the gate and
    the decoder query of the parent), then reference kernels and reassembly."""
    batch, _, height, width = x.shape
    query = torch.zeros(batch, sapa.query.out_channels, 2 * height, 2 * width, dtype=x.dtype)
    key = torch.zeros(batch, sapa.key.out_channels, height, width, dtype=x.dtype)
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                key[b, :, i, j] = _project(_layer_norm(x[b, :, i, j], sapa.norm), sapa.key)
        for i in range(2 * height):
            for j in range(2 * width):
                own = _project(_layer_norm(guide[b, :, i, j], sapa.norm_guide), sapa.query)
                if sapa.gate is not None:
                    parent = _layer_norm(x[b, :, i // 2, j // 2], sapa.norm)
                    gate = torch.sigmoid(_project(parent, sapa.gate))
                    own = gate * own + (1 - gate) * _project(parent, sapa.decoder_query)
                query[b, :, i, j] = own
    return reference_reassemble(x, reference_kernels(query, key, sapa.up_kernel, 2), 2)


@pytest.mark.parametrize("similarity", ["gated", "bilinear"])
def test_sapa_matches_its_definition(similarity):
    sapa = _perturbed(SAPA(channels=4, embedding_channels=3, up_kernel=3, similarity=similarity))
    x = torch.randn(2, 4, 3, 2, dtype=torch.float64)
    guide = torch.randn(2, 4, 6, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(sapa(x, guide), reference_sapa(sapa, x, guide))


def test_sapa_gate_open_is_sapa_b():
    """A saturated gate leaves the encoder's query alone: SAPA-G becomes SAPA-B."""
    gated = SAPA(channels=4, embedding_channels=3, similarity="gated")
    plain = SAPA(channels=4, embedding_channels=3, similarity="bilinear")
    plain.load_state_dict(gated.state_dict(), strict=False)
    x, guide = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        gated.gate.weight.zero_()
        gated.gate.bias.fill_(40.0)
        torch.testing.assert_close(gated(x, guide), plain(x, guide))
        gated.gate.bias.fill_(-40.0)
        assert not torch.allclose(gated(x, guide), plain(x, guide))


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("fade_r50", {"up_kernel": 4}, "must be odd"),
        ("fade_r50", {"compressed_channels": 0}, "compressed_channels is a size and must be >= 1"),
        ("sapa_r50", {"similarity": "cosine"}, "similarity must be one of"),
        ("sapa_r50", {"channels": 0}, "channels is a size and must be >= 1"),
        ("sapa_r50", {"output_stride": 8}, "use output_stride=32"),
    ],
)
def test_bad_options_raise_clear_errors(name, options, match):
    with pytest.raises(ValueError, match=match):
        nrdseg.create_model(name, num_classes=2, **{**tiny_options(name), **options})


#: ResNet-50c widths of the maps the heads read (neck = ASPP at stride 32).
WIDTHS = {"neck": 512, "stride16": 1024, "stride8": 512, "stride4": 256}


def _fade_step(low: int, high: int, c: int) -> int:
    """FADE at 64 compressed channels, 3x3 content encoder, 5x5 kernels."""
    compress = high * c * 64 + low * c * 64  # encoder map at 2x, decoder map at 1x
    content = (high + low) * 64 * 9 * 25  # semi-shift: encoder half at 2x, decoder at 1x
    return compress + content + high * 25 * c + low * c  # reassembly, one-channel gate


def _sapa_step(low: int, high: int, c: int) -> int:
    """SAPA-G at 64 embedding channels and 5x5 kernels."""
    projections = high * c * 64 + 2 * low * c * 64  # guide query at 2x; key, decoder query
    return projections + low * c + high * 25 * 64 + high * 25 * c  # gate, similarity, reassembly


def _decoder_macs(step, classes: int, height: int, width: int, c: int = 256) -> int:
    """Laterals (1x1 to c), a guided step per x2, the classifier at stride 4."""
    low = (height // 32) * (width // 32)
    macs = low * WIDTHS["neck"] * c
    for level in ("stride16", "stride8", "stride4"):
        high = 4 * low
        macs += high * WIDTHS[level] * c + step(low, high, c)
        low = high
    return macs + low * c * classes


@pytest.mark.parametrize(("name", "step"), [("fade_r50", _fade_step), ("sapa_r50", _sapa_step)])
@pytest.mark.parametrize(("classes", "height", "width"), [(19, 1024, 2048), (150, 512, 512)])
def test_decoder_gmacs_are_the_hand_count(name, step, classes, height, width):
    report = model_flops(name, num_classes=classes, height=height, width=width)
    expected = _decoder_macs(step, classes, height, width)
    assert report.decoder == pytest.approx(expected / 1e9, rel=1e-9)
