"""Where this process stands among ``torch.distributed`` processes, and gathering from all.

Below every package that runs on several processes: training (``nrdseg.engine``, which
also joins the process group) and evaluation, which only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.distributed as dist


@dataclass(frozen=True, kw_only=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, on GPU ``local_rank``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def current(cls) -> DistInfo:
        """Rank and world size of the initialised default process group, or one process
        without one. ``local_rank`` stays 0: the group does not record it, and the code
        that placed this process on its device knows it."""
        if dist.is_available() and dist.is_initialized():
            return cls(rank=dist.get_rank(), world_size=dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def all_gather_objects(info: DistInfo, value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order (just ``[value]`` in one process)."""
    if not info.enabled:
        return [value]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered
