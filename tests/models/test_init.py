"""Initialisation matches mmcv/mmseg, as the authors' code gets it (issue 12, part 1)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nrdseg
from tests.conftest import tiny_options

MODELS = nrdseg.list_models()

#: Convs outside the backbone that are not mmcv ConvModules, and what initialises them.
CLASSIFIERS = ("decoder.classifier", "aux_head.classifier")  # mmseg conv_seg: N(0, 0.01)
OWN_INIT = (
    "decoder.controller.1",  # NRD's xavier / N (tests/test_dynamic_mlp.py)
    "decoder.compressors.",  # CARAFE: mmcv's CARAFEPack (checked below)
    "decoder.encoders.",
    "decoder.predictor",  # DUpsampling: no mmseg counterpart, PyTorch's default
    "decoder.reconstruct",
)


def _head_convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and not name.startswith("backbone.")
    }


def _kaiming_fan_out_std(conv: nn.Conv2d) -> float:
    kh, kw = conv.kernel_size
    return math.sqrt(2.0 / (conv.out_channels * kh * kw))


@pytest.mark.parametrize("name", MODELS)
def test_every_conv_module_is_kaiming_fan_out_and_every_classifier_normal_001(name):
    model = nrdseg.create_model(name, num_classes=5, **tiny_options(name))
    convs = _head_convs(model)
    kaiming = {
        key: conv
        for key, conv in convs.items()
        if not key.startswith(CLASSIFIERS + OWN_INIT)
        and not (name.startswith("duc") and key == "decoder.conv")
    }
    assert any(key.startswith("neck.") for key in kaiming)
    assert any(key.startswith("decoder.") for key in kaiming) or name.startswith(
        ("bilinear", "carafe", "duc")
    )
    for key, conv in kaiming.items():
        expected = _kaiming_fan_out_std(conv)
        measured = conv.weight.std().item()
        assert abs(measured / expected - 1) < 0.15, (key, measured, expected)
        assert abs(conv.weight.mean().item()) < 0.15 * expected, key
        if conv.bias is not None:
            assert torch.all(conv.bias == 0), key
    classifiers = [key for key in convs if key.startswith(CLASSIFIERS)]
    if name.startswith("duc"):
        classifiers.append("decoder.conv")
    assert "aux_head.classifier" in classifiers
    for key in classifiers:
        assert abs(convs[key].weight.std().item() / 0.01 - 1) < 0.3, key
        assert torch.all(convs[key].bias == 0), key
    for key, norm in model.named_modules():
        if isinstance(norm, nn.BatchNorm2d) and not key.startswith("backbone."):
            assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0), key


def test_nrd_guidance_convs_are_conv_modules_at_the_paper_widths():
    """The guidance 3x3 256 -> 48 (0.068) and its 1x1 48 -> 16 (0.354), as in the official head."""
    head = nrdseg.models.heads.NRDHead(
        in_channels=64, low_level_channels=256, num_classes=19, controller_channels=64
    )
    hidden, last = head.guidance[0][0], head.guidance[1]
    assert hidden.weight.std().item() == pytest.approx(math.sqrt(2 / (48 * 9)), rel=0.05)
    assert last.weight.std().item() == pytest.approx(math.sqrt(2 / 16), rel=0.1)
    assert torch.all(last.bias == 0)


def test_carafe_compressors_are_xavier_uniform_as_in_mmcv():
    model = nrdseg.create_model("carafe_r50", num_classes=5, **tiny_options("carafe_r50"))
    for compressor in model.decoder.compressors:
        fan_in, fan_out = compressor.in_channels, compressor.out_channels
        expected = math.sqrt(2.0 / (fan_in + fan_out))
        assert compressor.weight.std().item() == pytest.approx(expected, rel=0.15)
        assert torch.all(compressor.bias == 0)
