"""The benchmarks' CPU peak-memory probe sees torch allocations and frees (Linux only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

_SCRIPT = """
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from harness import peak_bytes
cpu = torch.device("cpu")
def hold_64_mib():
    a = torch.ones(16 * 2**20)  # 64 MiB, written so its pages are resident
    b = torch.ones(8 * 2**20)  # 32 MiB more while a is alive
    return float(a[0] + b[0])
def sequential_32_mib():
    for _ in range(4):
        float(torch.ones(8 * 2**20)[0])  # each 32 MiB buffer is freed before the next
hold_64_mib()
print(json.dumps([peak_bytes(hold_64_mib, device=cpu), peak_bytes(sequential_32_mib, device=cpu)]))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_cpu_peak_counts_live_torch_buffers():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(BENCHMARKS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    together, sequential = (v / 2**20 for v in json.loads(result.stdout.strip().splitlines()[-1]))
    assert 94 <= together <= 110
    assert 30 <= sequential <= 40
