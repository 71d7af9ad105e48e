"""timm backbone wrapper: stride-4, stride-16 and last feature maps of any timm model."""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from nrdseg.models.weights import LoadReport, load_matching, read_state_dict

logger = logging.getLogger("nrdseg")

#: Reductions (in the non-dilated model) of the three maps the heads consume.
_WANTED_REDUCTIONS = (4, 16, 32)


class TimmBackbone(nn.Module):
    """``timm.create_model(features_only=True)`` returning [stride-4, stride-16, last] maps.

    ``pretrained`` is False, True (timm's weights through its hub) or a path to a local
    checkpoint in timm/torchvision or mmseg ResNet/ResNetV1c/ResNeXt key layout, or an nrdseg
    checkpoint (its directory or ``model.safetensors``: the backbone of another nrdseg model).

    ``frozen_stages`` is mmseg's: -1 trains everything, 0 freezes the stem (``conv1``,
    ``bn1``; the whole deep stem of ResNetV1c), k >= 1 the stem and ``layer1`` .. ``layerk``.
    Frozen parameters get ``requires_grad=False`` and the frozen modules (their BatchNorms)
    stay in eval mode whenever the model is put in training mode, so their running
    statistics never move. The authors' ResNeXt-101 ADE20K config uses 1. It needs a
    ResNet-family backbone (modules ``conv1``, ``bn1``, ``layer1`` ...).
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
            getattr(self.body, key).requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> TimmBackbone:
        """``nn.Module.train`` that keeps the frozen stages in eval mode."""
        super().train(mode)
        for key in self.frozen:
            getattr(self.body, key).eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


def _frozen_names(body: nn.Module, name: str, frozen_stages: int) -> list[str]:
    """The stem and the first ``frozen_stages`` layers of a ResNet-family body, as mmseg."""
    if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= 4:
        raise ValueError(f"frozen_stages must be an integer in [-1, 4], got {frozen_stages!r}")
    wanted = ["conv1", "bn1"] + [f"layer{i}" for i in range(1, frozen_stages + 1)]
    children = dict(body.named_children())
    if frozen_stages >= 0 and any(key not in children for key in wanted):
        raise ValueError(
            f"frozen_stages={frozen_stages} needs a ResNet-family backbone with modules "
            f"{wanted}; {name!r} has {list(children)}"
        )
    return wanted if frozen_stages >= 0 else []


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

    DDP's ``module.`` is dropped first; nrdseg checkpoints (``backbone.body.*``, e.g. a
    ``model.safetensors``) keep their backbone; mmseg ones (``backbone.*``) too, renamed.
    """
    raw = {k.removeprefix("module."): v for k, v in raw.items()}
    if any(k.startswith(NRDSEG_BODY) for k in raw):
        return {k[len(NRDSEG_BODY) :]: v for k, v in raw.items() if k.startswith(NRDSEG_BODY)}
    if any(k.startswith("backbone.") for k in raw):
        raw = {k: v for k, v in raw.items() if k.startswith("backbone.")}
    return {_mmseg_to_timm(k): v for k, v in raw.items()}


def load_backbone_checkpoint(body: nn.Module, path: str | Path) -> LoadReport:
    """Load a local checkpoint into ``body`` non-strictly and report what matched."""
    state = backbone_state(read_state_dict(path))
    report = load_matching(body, state, source=str(path), what="backbone")
    level = logging.WARNING if report.missing or report.mismatched else logging.INFO
    logger.log(level, "backbone weights: %s", report.summary())
    return report
