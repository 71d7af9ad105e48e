"""timm's contract checked once when a backbone is built (issue 21, item 2): channels-last
maps are adapted, fixed input sizes made dynamic or refused, strides checked, and
``pretrained=True`` offline fails at once naming the offline choices."""

from __future__ import annotations

import socket
import time

import pytest
import timm
import torch
import torch.nn.functional as F

import nrdseg
from nrdseg.checkpoint.hub import WeightsUnavailableError
from nrdseg.models import backbone as backbone_module
from nrdseg.models.backbone import TimmBackbone

SMALL = {"neck_channels": 32, "controller_channels": 32, "aux_channels": 16}


@pytest.fixture(autouse=True)
def _fresh_probes():
    """Probes are cached per backbone name; a patched timm must not leak into other tests."""
    backbone_module._probe.cache_clear()
    yield
    backbone_module._probe.cache_clear()


def test_swin_with_nhwc_maps_and_a_224_pixel_default_runs_at_any_size():
    """timm's Swin gives NHWC maps (output_fmt) and asserts 224 px unless made dynamic."""
    model = nrdseg.create_model(
        "nrd_r50", num_classes=3, backbone="swin_tiny_patch4_window7_224", **SMALL
    )
    assert model.backbone.channels_last_output
    assert [s.channels for s in model.backbone.shapes.values()] == [96, 192, 384, 768]
    model.eval()
    with torch.no_grad():
        for size in [(64, 64), (45, 70)]:
            assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_a_channels_last_backbone_gives_nchw_maps_with_the_declared_widths():
    backbone = TimmBackbone(name="test_mambaout")  # timm output_fmt NHWC
    maps = backbone(torch.randn(1, 3, 64, 96))
    for name, spec in backbone.shapes.items():
        assert maps[name].shape == (1, spec.channels, 64 // spec.stride, 96 // spec.stride)


def test_a_backbone_that_takes_only_one_input_size_is_refused_when_built():
    with pytest.raises(ValueError, match=r"'test_coatnet' takes only 160x160 images"):
        nrdseg.create_model("bilinear_r50", num_classes=3, backbone="test_coatnet")


def test_a_map_whose_stride_differs_from_feature_info_is_refused(monkeypatch):
    """A model whose last map comes out at stride 16 though feature_info says 32."""
    create = timm.create_model

    def lying(*args, **kwargs):
        model = create(*args, **kwargs)
        forward = model.forward

        def upsampled_last(x):
            maps = forward(x)
            return [*maps[:-1], F.interpolate(maps[-1], scale_factor=2.0)]

        model.forward = upsampled_last
        return model

    monkeypatch.setattr(timm, "create_model", lying)
    with pytest.raises(ValueError, match=r"'test_resnet': its stride32 map .* stride 32\) comes"):
        TimmBackbone(name="test_resnet")


def test_pretrained_true_offline_fails_at_once_naming_the_offline_choices(monkeypatch, tmp_path):
    """Without a connection timm's download retried for about a minute, then raised the
    Hub's LocalEntryNotFoundError; now the error comes at once and says what to do."""

    def no_network(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as error:
        TimmBackbone(name="test_resnet", pretrained=True)
    assert time.monotonic() - start < 20
    message = str(error.value)
    assert "the Hub cannot be reached" in message
    assert "pretrained: PATH" in message and "nrdseg[weights]" in message
