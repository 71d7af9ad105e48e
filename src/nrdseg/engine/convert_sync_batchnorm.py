"""Synchronised BatchNorm for multi-process training, on GPUs and on CPUs.

On CUDA this is ``torch.nn.SyncBatchNorm``. Torch's version refuses CPU tensors (and
DistributedDataParallel refuses it in CPU modules), so on CPU BatchNorm becomes
:class:`nrdseg.ops.cpu_sync_batchnorm.CPUSyncBatchNorm`.
"""

from __future__ import annotations

import torch
from timm.layers import BatchNormAct2d
from timm.layers import convert_sync_batchnorm as convert_sync_batchnorm_with_act
from torch import nn

from nrdseg.ops.cpu_sync_batchnorm import CPUSyncBatchNorm, CPUSyncBatchNormAct


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        options = {
            "eps": module.eps,
            "momentum": module.momentum,
            "affine": module.affine,
            "track_running_stats": module.track_running_stats,
        }
        if isinstance(module, BatchNormAct2d):  # keep its activation, which plain BN drops
            synced = CPUSyncBatchNormAct(
                module.num_features, act=module.act, drop=module.drop, **options
            )
        else:
            synced = CPUSyncBatchNorm(module.num_features, **options)
        synced.load_state_dict(module.state_dict())
        for name, param in module.named_parameters(recurse=False):  # frozen stays frozen
            getattr(synced, name).requires_grad_(param.requires_grad)
        return synced.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, _to_cpu_sync(child))
    return module


def convert_sync_batchnorm(module: nn.Module, *, device: torch.device) -> nn.Module:
    """Every BatchNorm*d of ``module`` made synchronised, for training on ``device``.

    timm's ``BatchNormAct2d`` (BatchNorm + activation in one module, in EfficientNet or
    RegNet backbones) keeps its activation: torch's converter would drop it.
    """
    if device.type == "cpu":
        return _to_cpu_sync(module)
    return convert_sync_batchnorm_with_act(module)
