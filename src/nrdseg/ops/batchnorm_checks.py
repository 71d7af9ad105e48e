"""What batch a training-mode BatchNorm needs: checked before the model runs, so that the
user sees the cause rather than PyTorch's error from whichever layer meets it first."""

from __future__ import annotations

import torch.distributed as dist
from torch import nn

from nrdseg.ops.cpu_sync_batchnorm import is_sync_batchnorm


def _processes_sharing_statistics(module: nn.Module) -> int:
    if is_sync_batchnorm(module) and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def check_batch_statistics(model: nn.Module, batch_size: int) -> None:
    """Refuse a training batch that leaves a BatchNorm one value per channel.

    Every training-mode BatchNorm of ``model`` normalizes over the batch; the ASPP
    image-pooling branch has a single value per image, so a batch of one image (per
    process, unless the norm is synchronised across processes) cannot be normalized.
    Checked before the model runs, so the user sees this and not PyTorch's error from
    whichever layer first meets a 1x1 map (the backbone's, for small crops).
    """
    if batch_size > 1:
        return
    norms = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]
    if any(_processes_sharing_statistics(m) * batch_size < 2 for m in norms):
        raise ValueError(
            f"training needs at least 2 images per batch, got {batch_size}: BatchNorm "
            "normalizes over the batch and the ASPP image-pooling branch has one value per "
            "image (use loader.batch_size >= 2, or SyncBN across several processes)"
        )
