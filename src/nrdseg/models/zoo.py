"""Model zoo: named (encoder, decoder) recipes and ``create_model`` / ``list_models``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrdseg.checkpoint.fine_tune import init_from_checkpoint
from nrdseg.models.aspp import DILATIONS_BY_STRIDE, SeparableASPP
from nrdseg.models.backbone import TimmBackbone
from nrdseg.models.heads import (
    BilinearHead,
    CARAFEHead,
    DecodeHead,
    DeepLabV3PlusDySampleHead,
    DeepLabV3PlusHead,
    DUCHead,
    DUpsamplingHead,
    DySampleHead,
    FADEHead,
    FCNHead,
    FreqFusionHead,
    IFAHead,
    NRDHead,
    SAPAHead,
    SegFormerHead,
    SegFormerLinearHead,
)
from nrdseg.models.loss_terms import DecodeLoss, build_decode_loss
from nrdseg.models.segmentor import Segmentor, encoder_shapes
from nrdseg.models.shapes import LEVELS, ShapeSpec
from nrdseg.ops.labels import IGNORE_INDEX
from nrdseg.utils.names import did_you_mean


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: which head, and the defaults that make it the paper's model.

    ``encoder`` holds :func:`build_encoder` keywords, ``decoder`` the head's own options
    (:meth:`~nrdseg.models.heads.base.DecodeHead.options`).
    """

    head: type[DecodeHead]
    description: str
    encoder: dict[str, Any] = field(default_factory=dict)
    decoder: dict[str, Any] = field(default_factory=dict)


_ZOO: dict[str, ModelSpec] = {}


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
        in_channels=body.shapes[LEVELS[-1]].channels,
        channels=neck_channels,
        dilations=tuple(dilations or DILATIONS_BY_STRIDE[output_stride]),
    )
    return body, neck


def build_training_parts(
    shapes: Mapping[str, ShapeSpec],
    *,
    num_classes: int,
    aux: bool = True,
    aux_channels: int = 256,
    ignore_index: int = IGNORE_INDEX,
    loss_decode: Sequence[Mapping[str, Any]] | None = None,
    sampler: Mapping[str, Any] | None = None,
) -> tuple[FCNHead | None, DecodeLoss]:
    """The auxiliary FCN head (on ``stride16``; None without ``aux``) and the decode loss.

    ``loss_decode`` (mmseg's list of ``{"type": ..., "loss_weight": ...}``) and ``sampler``
    (OHEM) as :func:`nrdseg.models.loss_terms.build_decode_loss` takes them.
    """
    aux_head = (
        FCNHead.from_shapes(shapes, num_classes=num_classes, channels=aux_channels) if aux else None
    )
    loss = build_decode_loss(
        loss_decode, sampler, num_classes=num_classes, ignore_index=ignore_index
    )
    return aux_head, loss


def _keywords(function: Any, *, wired: set[str]) -> dict[str, inspect.Parameter]:
    params = inspect.signature(function, eval_str=True).parameters
    return {name: p for name, p in params.items() if name not in wired | {"self"}}


#: The options of each part of a model: the encoder, the segmentor (auxiliary head, loss,
#: normalisation), and the head, whose options its zoo entry's class declares.
_ENCODER_OPTIONS = _keywords(build_encoder, wired=set())
_TRAINING_OPTIONS = _keywords(build_training_parts, wired={"shapes", "num_classes"})
_SEGMENTOR_INIT = _keywords(
    Segmentor.__init__,
    wired={"backbone", "neck", "decoder", "aux_head", "num_classes", "decode_loss"},
)
_SEGMENTOR_OPTIONS = {**_TRAINING_OPTIONS, **_SEGMENTOR_INIT}
#: Training-only options: the decode loss (mmseg's ``loss_decode`` list) and OHEM sampler.
LOSS_OPTIONS = {"loss_decode", "sampler"}


def register_model(name: str, spec: ModelSpec) -> None:
    """Add a named recipe; extensions call this to put new decoders in the zoo.

    Raises ``ValueError`` for a taken name, for a head option whose name is also an
    encoder or segmentor option (an override would fit two parts), and for ``encoder`` /
    ``decoder`` defaults that are not options of their part.
    """
    if name in _ZOO:
        raise ValueError(f"model {name!r} is already registered")
    head = spec.head.options()
    for part, options in (("encoder", _ENCODER_OPTIONS), ("segmentor", _SEGMENTOR_OPTIONS)):
        shared = sorted(set(head) & set(options))
        if shared:
            raise ValueError(
                f"model {name!r}: {spec.head.__name__} option(s) {shared} are also {part} "
                "options, so an override could not say which part it sets; rename them"
            )
    for part, defaults, options in (
        ("encoder", spec.encoder, _ENCODER_OPTIONS),
        ("decoder", spec.decoder, head),
    ):
        unknown = sorted(set(defaults) - set(options))
        if unknown:
            raise ValueError(f"model {name!r}: {part} defaults {unknown} are not {part} options")
    _ZOO[name] = spec


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_ZOO)


def model_spec(name: str) -> ModelSpec:
    if name not in _ZOO:
        hint = did_you_mean(name, list_models())
        raise ValueError(f"unknown model {name!r}{hint}; valid models: {', '.join(list_models())}")
    return _ZOO[name]


def option_parameters(name: str) -> dict[str, inspect.Parameter]:
    """Every keyword override ``create_model(name, ...)`` accepts, with the parameter that
    receives it (annotation evaluated, default), for checking config values before the
    model is built."""
    return {**_ENCODER_OPTIONS, **_SEGMENTOR_OPTIONS, **model_spec(name).head.options()}


def valid_options(name: str) -> list[str]:
    """Keyword overrides ``create_model(name, ...)`` accepts."""
    return sorted(option_parameters(name))


def width_options(name: str) -> tuple[str, ...]:
    """The options that set the width of ``name``'s head (tests shrink, studies scale them)."""
    return model_spec(name).head.width_options


def scaled_widths(name: str, *, neck_channels: int) -> dict[str, int]:
    """``name``'s head widths scaled by ``neck_channels`` / the default neck (512), to a
    multiple of 8: the head keeps its size relative to a narrower or wider encoder."""
    spec = model_spec(name)
    ratio = neck_channels / _ENCODER_OPTIONS["neck_channels"].default
    defaults = {**{k: p.default for k, p in spec.head.options().items()}, **spec.decoder}
    return {key: max(8, round(defaults[key] * ratio / 8) * 8) for key in spec.head.width_options}


#: Options ``create_model`` reads itself, with no signature of their own to check them by.
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

    Assembly: the encoder is built first; the head takes the channel counts of the maps
    it declares from the encoder's shapes (:meth:`DecodeHead.from_shapes`).

    >>> model = create_model("nrd_r50", num_classes=19, pretrained=True)
    >>> tuned = create_model("nrd_r50", num_classes=5, init_from="work_dirs/cityscapes")
    """
    spec = model_spec(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    unknown = sorted(set(overrides) - set(option_parameters(name)))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for model {name!r}"
            f"{did_you_mean(unknown[0], option_parameters(name))}; valid: {valid_options(name)}"
        )
    options = {**spec.encoder, **spec.decoder, **overrides}

    def part(keys: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k in keys}

    body, neck = build_encoder(**part(_ENCODER_OPTIONS))
    shapes = encoder_shapes(body, neck)
    aux_head, decode_loss = build_training_parts(
        shapes, num_classes=num_classes, **part(_TRAINING_OPTIONS)
    )
    model = Segmentor(
        backbone=body,
        neck=neck,
        decoder=spec.head.from_shapes(shapes, num_classes=num_classes, **part(spec.head.options())),
        aux_head=aux_head,
        decode_loss=decode_loss,
        num_classes=num_classes,
        **part(_SEGMENTOR_INIT),
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
    "dysample_r50": ModelSpec(
        DySampleHead, "ResNet-50c + ASPP + DySample-S+ x2 x2 x2 (Liu et al., ICCV 2023)", _R50
    ),
    "dlv3p_dysample_r50": ModelSpec(
        DeepLabV3PlusDySampleHead,
        "DeepLabV3+ decoder upsampling by DySample-S+ (Liu et al., ICCV 2023)",
        _R50,
    ),
    "freqfusion_r50": ModelSpec(
        FreqFusionHead,
        "ResNet-50c + ASPP + FreqFusion pyramid to stride 4 (Chen et al., TPAMI 2024)",
        _R50,
    ),
    "dupsample_r50": ModelSpec(
        DUpsamplingHead, "ResNet-50c + ASPP + DUpsampling, r = 32, 256-d code", _R50
    ),
    "fade_r50": ModelSpec(
        FADEHead, "ResNet-50c + ASPP + FPN with 3 FADE x2 steps (Lu et al., ECCV 2022)", _R50
    ),
    "sapa_r50": ModelSpec(
        SAPAHead, "ResNet-50c + ASPP + FPN with 3 SAPA-G x2 steps (Lu et al., NeurIPS 2022)", _R50
    ),
    "segformer_r50": ModelSpec(
        SegFormerHead,
        "ResNet-50c + ASPP + SegFormer all-MLP head (NeurIPS 2021; mmseg's), C = 256",
        _R50,
    ),
    "segformer_r50_slim": ModelSpec(
        SegFormerHead,
        "SegFormer all-MLP head, C = 144: NRD's decoder GMACs",
        _R50,
        {"channels": 144},
    ),
    "segformer_r50_linear": ModelSpec(
        SegFormerLinearHead, "SegFormer all-MLP head, the paper's linear projections, C = 256", _R50
    ),
    "ifa_r50": ModelSpec(
        IFAHead, "ResNet-50c + ASPP + IFA (ECCV 2022), released widths 256 / 512-256-256", _R50
    ),
    "ifa_r50_slim": ModelSpec(
        IFAHead,
        "IFA at half the released widths (128 / 256-128-128): NRD's decoder GMACs",
        _R50,
        {"channels": 128, "hidden_channels": 256, "mlp_channels": 128},
    ),
}.items():
    register_model(_name, _spec)
