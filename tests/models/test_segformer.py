"""SegFormer's all-MLP head: order of levels, the linear version's merged fuse, init, GMACs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import nrdseg
from nrdseg.analysis.flops import model_flops
from nrdseg.models.heads import SegFormerHead, SegFormerLinearHead
from tests.conftest import randomize_norms

CHANNELS = (7, 6, 5, 4)  # neck, stride 16, 8, 4: the head reads them deepest first
#: Map sizes per level, deepest first: stride ratios of 8, 4, 2, and a non-integer set.
SIZES = {
    "strides": [(2, 3), (4, 6), (8, 12), (16, 24)],
    "non-integer": [(2, 3), (3, 5), (7, 9), (11, 13)],
}


def _features(sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    return [
        torch.randn(2, c, *size, dtype=torch.float64)
        for c, size in zip(CHANNELS, sizes, strict=True)
    ]


def _with_statistics(head: SegFormerHead) -> SegFormerHead:
    randomize_norms(head)
    return head.double()


def _naive_linear(head: SegFormerLinearHead, features: list[torch.Tensor]) -> torch.Tensor:
    """The paper's order: each level's linear projection, bilinear resize to stride 4,
    concatenation deepest first, the 4C -> C fuse conv + BN + ReLU, the classifier."""
    size = features[-1].shape[-2:]
    resized = [
        F.interpolate(p(x), size=size, mode="bilinear", align_corners=False)
        for p, x in zip(head.projections, features, strict=True)
    ]
    return head.classifier(head.fuse(torch.cat(resized, dim=1)))


@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_linear_head_merged_fuse_equals_the_naive_order(sizes, mode):
    torch.manual_seed(0)
    head = _with_statistics(
        SegFormerLinearHead(in_channels=CHANNELS, num_classes=3, channels=8, dropout=0.0)
    )
    head.train(mode == "train")
    features = _features(sizes)
    with torch.no_grad():
        fast, naive = head(*features), _naive_linear(head, features)
    assert fast.shape == (2, 3, *sizes[-1])
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("head_class", [SegFormerHead, SegFormerLinearHead])
def test_levels_are_read_and_concatenated_deepest_first(head_class):
    """Only the first fuse block live: the logits follow the neck (the deepest level) alone."""
    torch.manual_seed(0)
    head = _with_statistics(head_class(in_channels=CHANNELS, num_classes=3, channels=8)).eval()
    assert head.in_features == ("neck", "stride16", "stride8", "stride4")
    with torch.no_grad():
        head.fuse[0].weight[:, 8:] = 0
    features = _features(SIZES["strides"])
    with torch.no_grad():
        logits = head(*features)
        other_shallow = head(*features[:3], torch.randn_like(features[3]))
        other_neck = head(torch.randn_like(features[0]), *features[1:])
    torch.testing.assert_close(other_shallow, logits, rtol=0, atol=0)
    assert not torch.allclose(other_neck, logits)


def test_linear_projections_keep_pytorchs_default_init_without_bias():
    head = SegFormerLinearHead(in_channels=(2048, 1024), num_classes=3, channels=256)
    for projection, fan_in in zip(head.projections, (2048, 1024), strict=True):
        assert isinstance(projection, torch.nn.Conv2d) and projection.bias is None
        bound = 1 / math.sqrt(fan_in)  # nn.Linear's uniform(-bound, bound)
        assert projection.weight.abs().max() <= bound
        assert projection.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_mmseg_projections_are_conv_bn_relu():
    with torch.device("meta"):
        model = nrdseg.create_model("segformer_r50", num_classes=19)
    widths = [(p[0].in_channels, p[0].out_channels) for p in model.decoder.projections]
    assert widths == [(512, 256), (1024, 256), (512, 256), (256, 256)]
    assert all(isinstance(p[1], torch.nn.BatchNorm2d) for p in model.decoder.projections)
    assert model.decoder.fuse[0].in_channels == 1024 and model.decoder.fuse[0].bias is None


def _hand_count(name: str, classes: int, height: int, width: int) -> int:
    """MACs of what runs, at ResNet-50 widths (neck 512, stride 16 1024, 8 512, 4 256)."""
    channels = 144 if name == "segformer_r50_slim" else 256
    levels = {32: 512, 16: 1024, 8: 512, 4: 256}
    pixels = (height // 4) * (width // 4)
    projections = sum((height // s) * (width // s) * c * channels for s, c in levels.items())
    if name == "segformer_r50_linear":  # composed F_l P_l (C x C_l) once, no 4C fuse per pixel
        return (
            projections + channels * channels * sum(levels.values()) + pixels * channels * classes
        )
    return projections + pixels * (4 * channels * channels + channels * classes)


@pytest.mark.parametrize("name", ["segformer_r50", "segformer_r50_slim", "segformer_r50_linear"])
@pytest.mark.parametrize(("classes", "height", "width"), [(19, 1024, 2048), (150, 512, 512)])
def test_decoder_gmacs_are_the_hand_count(name, classes, height, width):
    report = model_flops(name, num_classes=classes, height=height, width=width)
    assert report.decoder == pytest.approx(
        _hand_count(name, classes, height, width) / 1e9, rel=1e-9
    )
