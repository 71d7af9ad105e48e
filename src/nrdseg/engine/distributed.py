"""Process-group set-up from ``torchrun``'s environment, and small collective helpers.

:class:`~nrdseg.utils.distributed.DistInfo` (where a process stands) lives below, in
``nrdseg.utils.distributed``, for evaluation to read too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from nrdseg.utils.distributed import DistInfo


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def pick_device(device: str | torch.device | None, *, local_rank: int = 0) -> torch.device:
    """The device a process runs on: ``device`` as given ("cpu", "cuda", "cuda:1"), or
    for ``None`` CUDA when available, else the CPU. Under torchrun a bare "cuda" means
    this process's GPU (``local_rank``). Asking for CUDA without one is an error."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: this machine has no usable CUDA GPU")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def process_group_from_env(
    device: str | torch.device | None = None,
) -> Iterator[tuple[DistInfo, torch.device]]:
    """Read RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun) and join the process group.

    ``device`` as :func:`pick_device` reads it (default: CUDA if available). Several
    processes: NCCL on CUDA (one GPU per local rank), gloo on CPU. A group this call
    created is destroyed on the way out.
    """
    info = DistInfo(
        rank=_env_int("RANK", 0),
        world_size=_env_int("WORLD_SIZE", 1),
        local_rank=_env_int("LOCAL_RANK", 0),
    )
    device = pick_device(device, local_rank=info.local_rank)
    created = info.enabled and not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield info, device
    finally:
        if created:
            dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_over_ranks(info: DistInfo, tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``tensor`` across ranks (a copy in one process)."""
    tensor = tensor.clone()
    if info.enabled:
        dist.all_reduce(tensor)
        tensor /= info.world_size
    return tensor
