"""Initialisation matches mmcv/mmseg, as the authors' code gets it (issue 12, part 1)."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
from torch import nn

import nrdseg
from nrdseg.models.heads import DecodeHead
from tests.conftest import tiny_options

MODELS = nrdseg.list_models()


def _convs(module: nn.Module, prefix: str) -> dict[str, nn.Conv2d]:
    return {
        f"{prefix}.{name}": conv
        for name, conv in module.named_modules()
        if isinstance(conv, nn.Conv2d)
    }


def _declared(head: DecodeHead, prefix: str) -> tuple[set[str], tuple[str, ...]]:
    """The head's classifier convs (by name) and its own-init prefixes, under ``prefix``."""
    classifiers = {f"{prefix}.{name}" for name in head.classifiers}
    return classifiers, tuple(f"{prefix}.{key}" for key in head.own_init)


def _kaiming_fan_out_std(conv: nn.Conv2d) -> float:
    kh, kw = conv.kernel_size
    return math.sqrt(2.0 / (conv.out_channels * kh * kw))


def init_problems(model: nn.Module) -> list[str]:
    """Convs outside the backbone whose init their head does not account for.

    Every conv is a ConvModule (kaiming fan_out, bias 0) unless its head declares it a
    classifier (normal, std 0.01) or names its own init; declarations must name real convs.
    """
    convs = _convs(model.neck, "neck")
    classifiers: set[str] = set()
    own: tuple[str, ...] = ()
    problems = []
    for prefix in ("decoder", "aux_head"):
        head = getattr(model, prefix)
        head_convs = _convs(head, prefix)
        convs.update(head_convs)
        head_classifiers, head_own = _declared(head, prefix)
        problems += [
            f"{key}: declared classifier, no such conv"
            for key in head_classifiers - set(head_convs)
        ]
        for key in head_own:  # a stale declaration would exempt nothing, or a renamed conv
            if not any(c == key or c.startswith(key + ".") for c in head_convs):
                problems.append(f"{key}: declared own init, no such conv")
        classifiers |= head_classifiers & set(head_convs)
        own += head_own
    for key, conv in convs.items():
        if key in classifiers:
            if abs(conv.weight.std().item() / 0.01 - 1) > 0.3 or torch.any(conv.bias != 0):
                problems.append(f"{key}: classifier, not normal(0, 0.01) with bias 0")
        elif not any(key == o or key.startswith(o + ".") for o in own):
            expected = _kaiming_fan_out_std(conv)
            measured = conv.weight.std().item()
            if abs(measured / expected - 1) > 0.15 or abs(conv.weight.mean()) > 0.15 * expected:
                problems.append(f"{key}: std {measured:.4g}, kaiming fan_out {expected:.4g}")
            elif conv.bias is not None and torch.any(conv.bias != 0):
                problems.append(f"{key}: bias not 0")
    for key, norm in model.named_modules():
        if not isinstance(norm, nn.BatchNorm2d) or key.startswith("backbone."):
            continue
        if torch.any(norm.weight != 1) or torch.any(norm.bias != 0):
            problems.append(f"{key}: BatchNorm not 1 / 0")
    return problems


@pytest.mark.parametrize("name", MODELS)
def test_every_conv_module_is_kaiming_fan_out_and_every_classifier_normal_001(name):
    model = nrdseg.create_model(name, num_classes=5, **tiny_options(name))
    assert "classifier" in model.aux_head.classifiers
    assert init_problems(model) == []


def test_an_undeclared_conv_or_a_stale_declaration_fails_the_init_check():
    """The check is not vacuous: a PyTorch-default conv and a declaration naming no conv."""

    class Sloppy(DecodeHead):
        own_init: ClassVar[dict[str, str]] = {"gone": "renamed since"}

        def __init__(self, *, in_channels: int, num_classes: int) -> None:
            super().__init__()
            self.proj = nn.Conv2d(in_channels, 64, kernel_size=3)  # PyTorch's default init
            self.classifier = nn.Conv2d(64, num_classes, kernel_size=1)
            nn.init.normal_(self.classifier.weight, std=0.01)
            nn.init.zeros_(self.classifier.bias)

    model = nrdseg.create_model("bilinear_r50", num_classes=5, **tiny_options("bilinear_r50"))
    model.decoder = Sloppy(in_channels=model.neck.out_channels, num_classes=5)
    problems = init_problems(model)
    assert [p.split(":")[0] for p in problems] == ["decoder.gone", "decoder.proj"]


def test_nrd_guidance_convs_are_conv_modules_at_the_paper_widths():
    """The guidance 3x3 256 -> 48 (0.068) and its 1x1 48 -> 16 (0.354), as in the official head."""
    head = nrdseg.models.heads.NRDHead(
        in_channels=64, low_level_channels=256, num_classes=19, controller_channels=64
    )
    hidden, last = head.guidance_conv.conv, head.guidance_out
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
