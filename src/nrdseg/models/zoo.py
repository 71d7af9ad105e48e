"""Model zoo: named (encoder, decoder) recipes and ``create_model`` / ``list_models``."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from nrdseg.checkpoint.fine_tune import init_from_checkpoint
from nrdseg.models.aspp import SeparableASPP
from nrdseg.models.backbone import TimmBackbone
from nrdseg.models.heads import (
    BilinearHead,
    CARAFEHead,
    DeepLabV3PlusHead,
    DUCHead,
    DUpsamplingHead,
    FCNHead,
    NRDHead,
)
from nrdseg.models.loss_terms import build_decode_loss
from nrdseg.models.segmentor import Segmentor
from nrdseg.ops.labels import IGNORE_INDEX

#: ASPP dilations per encoder output stride (stride 32: official NRD; 8/16: DeepLab's).
DEFAULT_DILATIONS = {32: (1, 3, 6, 9), 16: (1, 6, 12, 18), 8: (1, 12, 24, 36)}

#: Arguments every head receives from the encoder; the rest are the head's own options.
_WIRED = {"in_channels", "low_level_channels", "num_classes"}


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: which head, and the defaults that make it the paper's model."""

    head: type[nn.Module]
    description: str
    encoder: dict[str, Any] = field(default_factory=dict)
    decoder: dict[str, Any] = field(default_factory=dict)


_ZOO: dict[str, ModelSpec] = {}


def register_model(name: str, spec: ModelSpec) -> None:
    """Add a named recipe; extensions call this to put new decoders in the zoo."""
    if name in _ZOO:
        raise ValueError(f"model {name!r} is already registered")
    _ZOO[name] = spec


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_ZOO)


def model_spec(name: str) -> ModelSpec:
    if name not in _ZOO:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(list_models())}")
    return _ZOO[name]


def build_encoder(
    *,
    backbone: str = "resnet50c",
    pretrained: bool | str | Path = False,
    output_stride: int = 32,
    neck_channels: int = 512,
    dilations: Sequence[int] | None = None,
    frozen_stages: int = -1,
) -> tuple[TimmBackbone, SeparableASPP]:
    """Backbone + depthwise-separable ASPP with the dilations of its output stride;
    ``frozen_stages`` as mmseg's (see :class:`TimmBackbone`)."""
    body = TimmBackbone(
        name=backbone,
        pretrained=pretrained,
        output_stride=output_stride,
        frozen_stages=frozen_stages,
    )
    neck = SeparableASPP(
        in_channels=body.channels[-1],
        channels=neck_channels,
        dilations=tuple(dilations or DEFAULT_DILATIONS[output_stride]),
    )
    return body, neck


def _head_options(head: type[nn.Module]) -> set[str]:
    return set(inspect.signature(head.__init__).parameters) - _WIRED - {"self"}


_ENCODER_OPTIONS = set(inspect.signature(build_encoder).parameters)
#: Training-only options: the decode loss (mmseg's ``loss_decode`` list) and OHEM sampler.
LOSS_OPTIONS = {"loss_decode", "sampler"}
_SEGMENTOR_OPTIONS = {
    "aux",
    "aux_weight",
    "aux_channels",
    "ignore_index",
    "avg_non_ignore",
    "mean",
    "std",
    *LOSS_OPTIONS,
}


def valid_options(name: str) -> list[str]:
    """Keyword overrides ``create_model(name, ...)`` accepts."""
    spec = model_spec(name)
    return sorted(_ENCODER_OPTIONS | _SEGMENTOR_OPTIONS | _head_options(spec.head))


def create_model(
    name: str, *, num_classes: int, init_from: str | Path | None = None, **overrides: Any
) -> Segmentor:
    """Build a zoo model; ``overrides`` replace encoder, decoder or segmentor defaults.

    Every zoo model trains with the authors' loss normalisation, ``avg_non_ignore=False``
    (cross-entropy summed over labelled pixels, divided by all pixels); pass
    ``avg_non_ignore=True`` for PyTorch's mean over labelled pixels (see :class:`Segmentor`).

    ``loss_decode`` (a list of ``{"type": "cross_entropy" | "dice" | "focal" | "lovasz",
    "loss_weight": ..., ...}``) and ``sampler`` (``{"thresh": 0.7, "min_kept": 100000}``,
    OHEM) set the training loss: see :mod:`nrdseg.models.loss_terms`.

    ``init_from`` starts the model from an nrdseg checkpoint (directory, training work
    dir, ``hf://org/name`` or weights file) of any class count: see
    :func:`nrdseg.checkpoint.fine_tune.init_from_checkpoint`. It is a starting point, not part of
    ``model.config``.

    >>> model = create_model("nrd_r50", num_classes=19, pretrained=True)
    >>> tuned = create_model("nrd_r50", num_classes=5, init_from="work_dirs/cityscapes")
    """
    spec = model_spec(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    unknown = sorted(set(overrides) - set(valid_options(name)))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for model {name!r}; valid: {valid_options(name)}"
        )
    options = {**spec.encoder, **spec.decoder, **overrides}
    body, neck = build_encoder(**{k: v for k, v in options.items() if k in _ENCODER_OPTIONS})
    head_kwargs = {k: v for k, v in options.items() if k in _head_options(spec.head)}
    wired = {
        "in_channels": neck.out_channels,
        "low_level_channels": body.channels[0],
        "num_classes": num_classes,
    }
    accepted = set(inspect.signature(spec.head.__init__).parameters)
    decoder = spec.head(**{k: v for k, v in wired.items() if k in accepted}, **head_kwargs)
    aux_head = None
    if options.get("aux", True):
        aux_head = FCNHead(
            in_channels=body.channels[1],
            num_classes=num_classes,
            channels=options.get("aux_channels", 256),
        )
    seg_kwargs = {
        k: options[k]
        for k in ("aux_weight", "ignore_index", "avg_non_ignore", "mean", "std")
        if k in options
    }
    decode_loss = build_decode_loss(
        options.get("loss_decode"),
        options.get("sampler"),
        num_classes=num_classes,
        ignore_index=options.get("ignore_index", IGNORE_INDEX),
    )
    model = Segmentor(
        backbone=body,
        neck=neck,
        decoder=decoder,
        aux_head=aux_head,
        num_classes=num_classes,
        decode_loss=decode_loss,
        **seg_kwargs,
    )
    model.config = {"name": name, "num_classes": num_classes, **overrides}
    if init_from is not None:
        init_from_checkpoint(model, init_from)
    return model


_R50 = {"backbone": "resnet50c"}
_R101 = {"backbone": "resnet101c"}
#: The authors' ResNeXt-101 recipe freezes the stem and layer1 (mmseg ``frozen_stages=1``).
_X101 = {"backbone": "resnext101_64x4d", "frozen_stages": 1}
_D8 = {"backbone": "resnet50c", "output_stride": 8}

for _name, _spec in {
    "nrd_r50": ModelSpec(NRDHead, "ResNet-50c + ASPP + NRD (paper Tables 1, 7)", _R50),
    "nrd_r101": ModelSpec(NRDHead, "ResNet-101c + ASPP + NRD (Tables 5-7)", _R101),
    "nrd_x101": ModelSpec(NRDHead, "ResNeXt-101 64x4d + ASPP + NRD (Table 5)", _X101),
    # The one deviation from the authors' init in the zoo: with coordinates alone the
    # zero-bias MLPs start dead (README, "Real images (CamVid)"), so they start from a template.
    "nrd_r50_coord_only": ModelSpec(
        NRDHead,
        "NRD without guidance map (Tables 1, 4)",
        _R50,
        {"use_guidance": False, "mlp_bias_init": "template"},
    ),
    "nrd_r50_guidance_only": ModelSpec(
        NRDHead, "NRD without coordinates (Table 4)", _R50, {"use_coords": False}
    ),
    "nrd_r50_cr8": ModelSpec(NRDHead, "NRD, C_r = 8 (Table 2)", _R50, {"rep_channels": 8}),
    "nrd_r50_cr32": ModelSpec(NRDHead, "NRD, C_r = 32 (Table 2)", _R50, {"rep_channels": 32}),
    "nrd_r50_cm8": ModelSpec(NRDHead, "NRD, C_m = 8 (Table 2)", _R50, {"guidance_channels": 8}),
    "nrd_r50_cm32": ModelSpec(NRDHead, "NRD, C_m = 32 (Table 2)", _R50, {"guidance_channels": 32}),
    "dlv3p_r50": ModelSpec(
        DeepLabV3PlusHead, "non-dilated ResNet-50c + DeepLabV3+ decoder (Table 1)", _R50
    ),
    "dlv3p_r50_d8": ModelSpec(
        DeepLabV3PlusHead, "dilated (output stride 8) DeepLabV3+, ResNet-50c", _D8
    ),
    "bilinear_r50": ModelSpec(BilinearHead, "ResNet-50c + ASPP + bilinear (Table 1)", _R50),
    "duc_r50": ModelSpec(DUCHead, "ResNet-50c + ASPP + DUC, r = 32 (Table 3)", _R50),
    "carafe_r50": ModelSpec(CARAFEHead, "ResNet-50c + ASPP + 3 CARAFE x2 stages (Table 3)", _R50),
    "dupsample_r50": ModelSpec(
        DUpsamplingHead, "ResNet-50c + ASPP + DUpsampling, r = 32, 256-d code", _R50
    ),
}.items():
    register_model(_name, _spec)
