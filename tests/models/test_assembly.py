"""How the zoo assembles a model: heads declare the encoder maps they read, the zoo wires
their widths from the encoder's shapes, and an option name belongs to one part only."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest
import torch
from torch import nn

import nrdseg
from nrdseg.models.heads import DecodeHead
from nrdseg.models.shapes import ShapeSpec
from nrdseg.models.zoo import (
    ModelSpec,
    option_parameters,
    register_model,
    scaled_widths,
    valid_options,
)
from tests.conftest import TINY


class TwoLevelHead(DecodeHead):
    """A head on the stride-8 map and the neck, recording what it was given."""

    inputs: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "in_channels": ("stride8", "neck"),
    }
    width_options = ("channels",)

    def __init__(
        self, *, in_channels: tuple[int, int], num_classes: int, channels: int = 24
    ) -> None:
        super().__init__()
        self.given = in_channels
        self.seen: list[tuple[int, ...]] = []
        self.fine = nn.Conv2d(in_channels[0], channels, kernel_size=1)
        self.coarse = nn.Conv2d(in_channels[1], channels, kernel_size=1)
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        self.seen = [tuple(fine.shape), tuple(coarse.shape)]
        coarse = nn.functional.interpolate(self.coarse(coarse), size=fine.shape[-2:])
        return self.classifier(self.fine(fine) + coarse)


@pytest.fixture
def two_level() -> str:
    name = "test_two_level_r50"
    register_model(name, ModelSpec(TwoLevelHead, "test head"))
    yield name
    nrdseg.models.zoo._ZOO.pop(name)


def test_a_head_gets_the_maps_it_declares_with_widths_from_the_encoder(two_level):
    model = nrdseg.create_model(two_level, num_classes=3, aux=False, **TINY)
    shapes = model.feature_shapes
    assert model.decoder.given == (shapes["stride8"].channels, shapes["neck"].channels)
    assert model.decoder.in_features == ("stride8", "neck")
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 96))
    assert logits.shape == (1, 3, 64, 96)
    assert model.decoder.seen == [(1, shapes["stride8"].channels, 8, 12), (1, 32, 2, 3)]
    assert "channels" in valid_options(two_level)
    assert option_parameters(two_level)["channels"].annotation in (int, "int")


def test_feature_shapes_give_the_actual_strides_of_a_dilated_encoder():
    model = nrdseg.create_model("dlv3p_r50_d8", num_classes=3, **TINY, channels=16)
    strides = {name: spec.stride for name, spec in model.feature_shapes.items()}
    assert strides == {"stride4": 4, "stride8": 8, "stride16": 8, "stride32": 8, "neck": 8}
    with torch.no_grad():
        maps = model.eval().encode(torch.randn(1, 3, 64, 64))
    for name, spec in model.feature_shapes.items():
        assert maps[name].shape[1:] == (spec.channels, 64 // spec.stride, 64 // spec.stride)


@pytest.mark.parametrize(
    ("option", "part"), [("neck_channels", "encoder"), ("aux_weight", "segmentor")]
)
def test_a_head_option_that_fits_two_parts_is_refused_at_registration(option, part):
    namespace: dict = {}
    exec(  # a head whose option shares its name with another part's
        f"def __init__(self, *, in_channels: int, num_classes: int, {option}: int = 1):\n"
        "    nn.Module.__init__(self)\n",
        {"nn": nn},
        namespace,
    )
    head = type("Clash", (DecodeHead,), {"__init__": namespace["__init__"]})
    with pytest.raises(ValueError, match=rf"\['{option}'\] are also {part} options"):
        register_model("test_clash", ModelSpec(head, "clash"))
    assert "test_clash" not in nrdseg.list_models()


def test_zoo_defaults_must_be_options_of_their_part():
    with pytest.raises(ValueError, match=r"decoder defaults \['chanels'\]"):
        register_model("test_typo", ModelSpec(TwoLevelHead, "typo", decoder={"chanels": 8}))
    with pytest.raises(ValueError, match=r"encoder defaults \['backbone_name'\]"):
        register_model("test_typo", ModelSpec(TwoLevelHead, "typo", {"backbone_name": "x"}))


def test_a_head_declaring_what_its_constructor_does_not_take_fails_when_defined():
    with pytest.raises(TypeError, match=r"does not take \['low_level_channels'\]"):

        class Missing(DecodeHead):
            inputs: ClassVar[dict[str, str]] = {
                "in_channels": "neck",
                "low_level_channels": "stride4",
            }

            def __init__(self, *, in_channels: int, num_classes: int) -> None:
                super().__init__()

    with pytest.raises(TypeError, match=r"unknown maps \['stride2'\]"):

        class Unknown(DecodeHead):
            inputs: ClassVar[dict[str, str]] = {"in_channels": "stride2"}

            def __init__(self, *, in_channels: int, num_classes: int) -> None:
                super().__init__()


def test_a_head_on_an_encoder_without_its_map_names_the_map():
    shapes = {"neck": ShapeSpec(channels=8, stride=32)}
    with pytest.raises(ValueError, match=r"reads encoder maps \['stride8'\]"):
        TwoLevelHead.from_shapes(shapes, num_classes=2)


def test_widths_scale_with_the_neck_from_each_head_s_zoo_default():
    assert scaled_widths("nrd_r50", neck_channels=256) == {"controller_channels": 256}
    assert scaled_widths("dlv3p_r50", neck_channels=128) == {"channels": 128}
    assert scaled_widths("carafe_r50", neck_channels=128) == {}


def _size_options() -> list[tuple[str, str]]:
    """(zoo model, option) for every int option of every zoo head, one model per head."""
    cases, seen = [], set()
    for name in nrdseg.list_models():
        head = nrdseg.models.zoo.model_spec(name).head
        if head in seen:
            continue
        seen.add(head)
        cases += [(name, o) for o, p in head.options().items() if p.annotation is int]
    return cases


@pytest.mark.parametrize(("name", "option"), _size_options())
@pytest.mark.parametrize("value", [0, -1])
def test_a_size_option_below_one_is_refused_naming_it(name, option, value):
    # before the check, 0 or -1 reached a layer as a raw RuntimeError / IndexError, or was
    # accepted (NRD's rep_channels 0, CARAFE's up_kernel -1)
    with torch.device("meta"), pytest.raises(ValueError, match=f"option {option} is a size"):
        nrdseg.create_model(name, num_classes=3, **{**TINY, option: value})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "segformer_r50",
            {"channels": "256"},
            "SegFormerHead option channels expects int, got '256'",
        ),
        ("dysample_r50", {"upsample_scales": "2,2,2"}, "option upsample_scales expects tuple"),
        ("freqfusion_r50", {"channels": 64.0}, "option channels expects int, got 64.0 (float)"),
        ("nrd_r50", {"rep_channels": True}, "option rep_channels expects int, got True"),
    ],
)
def test_a_python_option_of_the_wrong_type_is_refused_naming_it(name, options, message):
    # the CLI converts config values; from Python these reached torch as "can't multiply
    # sequence by non-int of type 'str'" or "not all arguments converted"
    with torch.device("meta"), pytest.raises(TypeError, match=re.escape(message)):
        nrdseg.create_model(name, num_classes=3, **{**TINY, **options})


def test_a_list_for_a_tuple_option_still_builds():
    with torch.device("meta"):
        nrdseg.create_model("dysample_r50", num_classes=3, **TINY, upsample_scales=[2, 4])
        nrdseg.create_model("nrd_r50", num_classes=3, **TINY, controller_channels=32)
