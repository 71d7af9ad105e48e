"""Eval-mode BatchNorm as a per-channel affine map, and folding it into the preceding conv.

In eval mode BatchNorm is ``x * scale + shift`` with constants from its running statistics,
so it can be absorbed into whatever linear map comes before it: inference then skips one
full pass over the feature map. The folds are plain differentiable tensor expressions, so
gradients still reach the original parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def can_fold(bn: nn.Module) -> bool:
    """True when ``bn`` is a BatchNorm that normalizes with running statistics right now."""
    return (
        isinstance(bn, nn.modules.batchnorm._BatchNorm)
        and not bn.training
        and bn.running_mean is not None
        and bn.running_var is not None
    )


def batchnorm_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with ``bn(x) == x * scale + shift`` per channel, for eval mode."""
    if not can_fold(bn):
        raise ValueError(
            "only an eval-mode BatchNorm with running statistics is an affine map; "
            f"got {type(bn).__name__} (training={bn.training}, "
            f"running stats={getattr(bn, 'running_mean', None) is not None})"
        )
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def fold_conv_bn(
    conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one conv equal to ``bn(conv(x))`` in eval mode."""
    scale, shift = batchnorm_affine(bn)
    return scale_conv(conv, scale=scale, shift=shift)


def scale_conv(
    conv: nn.Conv2d, *, scale: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one conv equal to ``conv(x) * scale + shift`` per output channel."""
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return weight, bias
