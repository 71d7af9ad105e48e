"""timm backbone wrapper: stride-4, stride-16 and last feature maps of any timm model."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn

logger = logging.getLogger("nrdseg")

#: Reductions (in the non-dilated model) of the three maps the heads consume.
_WANTED_REDUCTIONS = (4, 16, 32)


@dataclass
class LoadReport:
    """What a local checkpoint did and did not provide for the backbone."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded from {self.path}"]
        for name, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
                parts.append(f"{len(keys)} {name}: {shown}")
        return "; ".join(parts)


class TimmBackbone(nn.Module):
    """``timm.create_model(features_only=True)`` returning [stride-4, stride-16, last] maps.

    ``pretrained`` is False, True (timm's weights through its hub) or a path to a local
    checkpoint in timm/torchvision or mmseg ResNet/ResNetV1c/ResNeXt key layout.

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


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch checkpoint, never unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _mmseg_to_timm(key: str) -> str:
    """Map mmseg/mmcv ResNetV1c names (``backbone.stem.N``) to timm's (``conv1.N``, ``bn1``)."""
    for prefix in ("module.", "backbone."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key.startswith("stem."):
        index, _, rest = key[len("stem.") :].partition(".")
        key = f"bn1.{rest}" if index == "7" else f"conv1.{index}.{rest}"
    return key


def load_backbone_checkpoint(body: nn.Module, path: str | Path) -> LoadReport:
    """Load a local checkpoint into ``body`` non-strictly and report what matched."""
    raw = read_state_dict(path)
    if any(k.startswith("backbone.") for k in raw):
        raw = {k: v for k, v in raw.items() if k.startswith("backbone.")}
    state = {_mmseg_to_timm(k): v for k, v in raw.items()}
    own = body.state_dict()
    report = LoadReport(path=str(path))
    usable, seen = {}, set()
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            seen.add(key)
            report.mismatched.append(
                f"{key} (checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)})"
            )
        else:
            usable[key] = value
    report.loaded = sorted(usable)
    report.missing = sorted(
        k for k in own if k not in usable.keys() | seen and not k.endswith("num_batches_tracked")
    )
    if not usable:
        raise ValueError(
            f"no tensor of {path} matches the backbone ({len(state)} keys, e.g. "
            f"{', '.join(list(state)[:3])}; the backbone expects e.g. "
            f"{', '.join(list(own)[:3])})"
        )
    body.load_state_dict(usable, strict=False)
    level = logging.WARNING if report.missing or report.mismatched else logging.INFO
    logger.log(level, "backbone weights: %s", report.summary())
    return report
