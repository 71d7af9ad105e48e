"""The OpenMP runtime torch runs its CPU kernels on: its wait policy, and which one it is.

torch's CPU kernels (ATen, MKL, oneDNN) run on OpenMP: GNU libgomp in the PyPI wheels
for Linux, LLVM/Intel libomp (libiomp5) in others. Between parallel regions their
threads spin-wait for the next one by default (libgomp: 300000 spins, then sleep). On a
machine where another process holds a core, a thread then spins on a core while the
thread it waits for is off the CPU: a CPU training run on 2 cores went from 0.27 s/it to
6.5 s/it beside one busy process, and to 0.74 s/it with ``PASSIVE``, which makes waiting
threads sleep at once (``benchmarks/bench_cpu_load.py``, benchmarks/RESULTS.md). Both
runtimes read ``OMP_WAIT_POLICY`` once, when torch loads them, so it has to be set before
torch is first imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

WAIT_POLICY = "OMP_WAIT_POLICY"

#: Shared-library names of the OpenMP runtimes, as /proc/self/maps shows them.
_RUNTIMES = {"libgomp": "GNU libgomp", "libiomp5": "Intel libiomp5", "libomp": "LLVM libomp"}


def prefer_passive_wait(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy; True when the
    policy that will hold is passive and no OpenMP runtime is loaded yet (torch not yet
    imported), i.e. it takes effect for this process and the ones it starts."""
    environ.setdefault(WAIT_POLICY, "PASSIVE")
    return environ[WAIT_POLICY].upper() == "PASSIVE" and "torch" not in sys.modules


def openmp_runtime() -> str | None:
    """The OpenMP runtime loaded into this process (Linux), or None when none is or it
    cannot be told."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    names = {Path(line.split()[-1]).name for line in maps.splitlines() if "/" in line}
    for prefix, runtime in _RUNTIMES.items():
        if any(name.startswith(prefix) for name in names):
            return runtime
    return None
