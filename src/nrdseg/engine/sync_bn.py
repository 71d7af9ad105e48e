"""Synchronised BatchNorm for multi-process training, on GPUs and on CPUs.

On CUDA this is ``torch.nn.SyncBatchNorm``. Torch's version refuses CPU tensors (and
DistributedDataParallel refuses it in CPU modules), so on CPU :class:`CPUSyncBatchNorm`
computes the batch statistics from sums all-reduced by an autograd function that also
all-reduces their gradients: outputs and gradients equal plain
BatchNorm over the concatenated batches of all ranks.
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


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        synced = CPUSyncBatchNorm(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        synced.load_state_dict(module.state_dict())
        if module.affine:  # frozen stages stay frozen
            synced.weight.requires_grad_(module.weight.requires_grad)
            synced.bias.requires_grad_(module.bias.requires_grad)
        return synced.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, _to_cpu_sync(child))
    return module


def convert_sync_batchnorm(module: nn.Module, *, device: torch.device) -> nn.Module:
    """Every BatchNorm*d of ``module`` made synchronised, for training on ``device``."""
    if device.type == "cpu":
        return _to_cpu_sync(module)
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)
