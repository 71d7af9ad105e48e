"""SyncBatchNorm that also runs on CPU (gloo), for multi-process CPU training and tests.

``torch.nn.SyncBatchNorm`` refuses CPU tensors. On CPU this subclass computes the batch
statistics from all-reduced sums through ``torch.distributed.nn`` (which back-propagates
through the all-reduce), so the normalisation and its gradients equal plain BatchNorm
over the concatenated batches of all ranks. On GPUs it is torch's fused implementation.
"""

from __future__ import annotations

import itertools

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


class SyncBatchNorm(nn.SyncBatchNorm):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        syncing = self.training and dist.is_available() and dist.is_initialized()
        if not syncing or input.device.type != "cpu":
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.ndim)]
        stats = input.double()
        local = torch.cat(
            [
                stats.sum(dims),
                (stats * stats).sum(dims),
                stats.new_tensor([input.numel() / input.shape[1]]),
            ]
        )
        total = dist_fn.all_reduce(local, group=self.process_group or dist.group.WORLD)
        channels = input.shape[1]
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
                unbiased = var * count / max(float(count) - 1.0, 1.0)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        shape = [1, channels] + [1] * (input.ndim - 2)
        inv_std = torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
        out = (input - mean.to(input.dtype).view(shape)) * inv_std
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm*d in ``module`` by :class:`SyncBatchNorm`, keeping its state."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, nn.SyncBatchNorm
    ):
        reference = next(itertools.chain(module.parameters(), module.buffers()), None)
        placement = {} if reference is None else {"device": reference.device}
        synced = SyncBatchNorm(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            **placement,
        )
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child))
    return module
