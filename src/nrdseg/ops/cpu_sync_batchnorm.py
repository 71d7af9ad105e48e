"""BatchNorm whose statistics span processes, on CPUs.

:class:`CPUSyncBatchNorm` is nrdseg's CPU substitute for ``torch.nn.SyncBatchNorm`` (which
refuses CPU tensors): it computes the batch statistics from sums all-reduced by an
autograd function that also all-reduces their gradients, so outputs and gradients equal
plain BatchNorm over the concatenated batches of all ranks. Checks of "is this norm
synchronised?" go through :func:`is_sync_batchnorm`, which knows both classes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum over ranks is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm with statistics over all ranks' batches while training (gloo, CPU)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.ndim}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.ndim)]
        wide = input.double()  # sums of squares over whole batches: keep the precision
        local = torch.cat(
            [wide.sum(dims), (wide * wide).sum(dims), wide.new_tensor([input.numel() / channels])]
        )
        total = _AllReduceSum.apply(local)
        count = total[-1]
        mean = total[:channels] / count
        var = total[channels : 2 * channels] / count - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        shape = [1, channels] + [1] * (input.ndim - 2)
        scale = torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
        out = (input - mean.to(input.dtype).view(shape)) * scale
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


class CPUSyncBatchNormAct(CPUSyncBatchNorm):
    """:class:`CPUSyncBatchNorm`, then the dropout and activation of the timm
    ``BatchNormAct2d`` it replaces (timm's own SyncBatchNormAct is CUDA-only)."""

    def __init__(self, num_features: int, *, act: nn.Module, drop: nn.Module, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.drop = drop
        self.act = act

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(input)))


#: The synchronised BatchNorm classes: torch's (CUDA; timm's SyncBatchNormAct derives
#: from it) and nrdseg's CPU substitute (and its BatchNormAct variant).
SYNC_BATCHNORMS = (nn.SyncBatchNorm, CPUSyncBatchNorm)


def is_sync_batchnorm(module: nn.Module) -> bool:
    """True for torch's SyncBatchNorm, nrdseg's CPU substitute and their subclasses."""
    return isinstance(module, SYNC_BATCHNORMS)
