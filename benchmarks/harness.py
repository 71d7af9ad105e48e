"""Shared benchmark plumbing: machine description, timing, peak memory, markdown tables.

Peak memory on CUDA is ``torch.cuda.max_memory_allocated`` above what was allocated
before the call. On CPU, allocations bypass tracemalloc, so each case runs in a fresh
process with glibc's mmap threshold pinned (freed buffers leave the resident set) and the
kernel's resident-set high-water mark reset just before a second, measured call
(``/proc/self/clear_refs``); peak = high-water mark - resident set before that call.
Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.utils.flop_counter

MIB = 2**20


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda"
    )
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)


def setup(args: argparse.Namespace) -> torch.device:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return torch.device(args.device)


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"model name\s*:\s*(.+)", text)
    return match.group(1).strip() if match else platform.machine()


def describe_machine(device: torch.device) -> str:
    """One markdown paragraph naming what the numbers were measured on."""
    parts = [
        f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), torch threads: {torch.get_num_threads()}",
        f"torch {torch.__version__}",
        f"python {platform.python_version()}",
    ]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        parts.append(f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        note = " - LOADED machine, timings noisy" if load > 0.5 * (os.cpu_count() or 1) else ""
        parts.append(f"load average at the start {load:.1f}{note}")
    return "; ".join(parts)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    median_ms: float
    min_ms: float


def time_interleaved(
    fns: dict[str, Callable[[], object]], *, device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, Timing]:
    """Median and minimum wall time of each callable, timed round-robin after a warm-up.

    Round-robin spreads a busy neighbour's load over every case alike, so ratios taken
    within one call stay meaningful on a shared machine.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: Timing(statistics.median(t), min(t)) for name, t in times.items()}


def time_call(
    fn: Callable[[], object], *, device: torch.device, repeats: int, warmup: int = 1
) -> Timing:
    """Median and minimum wall time of ``fn`` after ``warmup`` untimed calls."""
    return time_interleaved({"fn": fn}, device=device, repeats=repeats, warmup=warmup)["fn"]


def load_note() -> str:
    """The load average now, for the end of a report (other processes skew CPU timings)."""
    if not hasattr(os, "getloadavg"):
        return ""
    load = os.getloadavg()
    return f"Load average at the end: {load[0]:.1f} (1 min), {load[1]:.1f} (5 min)."


def _status_kib(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {key}; CPU peak memory needs Linux")
    return int(match.group(1))


def peak_bytes(fn: Callable[[], object], *, device: torch.device) -> int:
    """Extra memory ``fn`` needs at its peak over what is held when it starts (see module doc)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to current RSS
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def peak_in_subprocess(script: str, worker: str, args: argparse.Namespace) -> int:
    """Run ``script --worker worker`` in a fresh process; it prints its peak bytes as JSON."""
    command = [sys.executable, script, "--worker", worker, "--threads", str(args.threads)]
    command += ["--device", args.device] + (["--quick"] if args.quick else [])
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory worker {worker!r} failed:\n{result.stderr[-2000:]}")
    return int(json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"])


def report_peak(fn: Callable[[], object], *, device: torch.device) -> None:
    """Worker side of :func:`peak_in_subprocess`: peak bytes of a second call, on stdout.

    The first call pages in library code and creates lazy state (optimizer momentum,
    kernel caches), which would otherwise count as the call's own memory.
    """
    fn()
    print(json.dumps({"peak_bytes": peak_bytes(fn, device=device)}))


def reference_conv(device: torch.device) -> tuple[Callable[[], object], float]:
    """A large dense 3x3 conv (channels-last, 256 -> 256 at 128x128) and its GMACs: what a
    conv can reach here. Time it among the cases so it sees the same machine load."""
    x = torch.randn(1, 256, 128, 128, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3, device=device)

    def run():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, padding=1)

    return run, 256 * 256 * 9 * 128 * 128 / 1e9


def compile_for_inference(fn: Callable) -> Callable:
    """torch.compile with inductor's freezing: weights become constants, so BatchNorms fold."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(fn)


def count_gmacs(fn: Callable[[], object]) -> float:
    """Multiply-accumulates of convolutions and matrix products in one call of ``fn``."""
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 2e9


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
