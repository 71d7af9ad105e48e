"""CPU training s/it alone and beside one busy process: OpenMP's default wait against PASSIVE.

Each case trains ``configs/synthetic/nrd.yaml`` (NRD on ResNet-18-D, 128-channel neck,
batch 8 of 128 x 128 scenes, one data worker) with ``train_from_config`` for a few
iterations in a fresh process, with the torch threads nrdseg chooses (one per core), and
reads ``time_per_iter`` from ``metrics.jsonl`` leaving out the first log window. The
cases differ in the environment torch starts in:

- ``today``: ``OMP_WAIT_POLICY`` unset, what a run got before ``nrdseg`` set it: libgomp's
  threads spin (300000 times) before they sleep;
- ``passive``: what the ``nrdseg`` command now sets before torch loads
  (``nrdseg.utils.openmp.prefer_passive_wait``);
- ``passive, 1 thread``: the same with ``OMP_NUM_THREADS=1``, the old warning's advice.

and in the load beside it: none, or one single-threaded busy process (``while True:
pass``) started before and killed after the case. Cases run in that order, alone or
loaded, one after the other. A spinning run beside a busy process is slow, so it runs
``--iters-spinning`` iterations instead of ``--iters``.

    python benchmarks/bench_cpu_load.py [--iters 16] [--iters-spinning 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "synthetic" / "nrd.yaml"

WORKER = r"""
import json, os, sys
from nrdseg.utils.openmp import prefer_passive_wait
config_path, work_dir, iters, passive = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if passive == "1":
    prefer_passive_wait()  # as the nrdseg command does, before torch is imported
from nrdseg.config.run import load_config
from nrdseg.engine.build import train_from_config
overrides = {
    "train.iters": iters, "train.log_interval": 2, "train.ckpt_interval": iters,
    "train.eval_interval": 0, "data.val": None, "data.check_labels": False,
}
train_from_config(load_config(config_path, overrides), work_dir, progress=False,
                  console=False, device="cpu")
import torch
windows = [json.loads(line) for line in open(os.path.join(work_dir, "metrics.jsonl"))]
times = [e["time_per_iter"] for e in windows if e["event"] == "train"][1:]
print(json.dumps({"s_per_it": sum(times) / len(times), "timed": 2 * len(times),
                  "threads": torch.get_num_threads(),
                  "policy": os.environ.get("OMP_WAIT_POLICY", "unset")}))
"""

BUSY = "while True: pass"

SETTINGS = {
    "today (OMP_WAIT_POLICY unset)": {"passive": False, "threads": None},
    "passive (nrdseg now)": {"passive": True, "threads": None},
    "passive, 1 thread": {"passive": True, "threads": 1},
}


def run_case(setting: dict, *, busy: bool, iters: int) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
    }
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if setting["threads"] is not None:
        env["OMP_NUM_THREADS"] = str(setting["threads"])
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as work:
            command = [sys.executable, "-c", WORKER, str(CONFIG), work, str(iters)]
            command.append("1" if setting["passive"] else "0")
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=16, help="iterations per case (even)")
    parser.add_argument(
        "--iters-spinning", type=int, default=6, help="iterations of today's policy when loaded"
    )
    args = parser.parse_args()
    start_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    results = {}
    for busy in (False, True):
        for name, setting in SETTINGS.items():
            iters = args.iters_spinning if busy and not setting["passive"] else args.iters
            results[name, busy] = run_case(setting, busy=busy, iters=iters)
            print(f"done: {name}, {'beside a busy process' if busy else 'alone'}", flush=True)
    rows = []
    for name in SETTINGS:
        alone, loaded = results[name, False], results[name, True]
        rows.append(
            (
                name,
                alone["threads"],
                f"{alone['s_per_it']:.3f}",
                f"{loaded['s_per_it']:.3f}",
                f"{loaded['s_per_it'] / alone['s_per_it']:.1f}x",
                f"{alone['timed']} / {loaded['timed']}",
            )
        )
    headers = ["OpenMP setting", "threads", "s/it alone", "s/it beside 1 busy process"]
    headers += ["loaded / alone", "iterations timed"]
    print()
    print(harness.markdown_table(headers, rows))
    today = results["today (OMP_WAIT_POLICY unset)", True]["s_per_it"]
    now = results["passive (nrdseg now)", True]["s_per_it"]
    idle = results["passive (nrdseg now)", False]["s_per_it"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(cores or 1, 2)  # a busy process on 1 core leaves the run half of it
    print(
        f"\nBeside one busy process: passive {today / now:.1f}x faster than today's policy. "
        f"With {cores} cores and one taken, the run gets about {cores - 1} of them: passive "
        f"takes {now / idle:.2f}x its alone time, {now / (idle * cores / (cores - 1)):.2f}x "
        "the alone time per core it gets (target: within ~2x)."
    )
    print(
        f"\n{os.cpu_count()} logical CPUs; load average at the start {start_load:.1f}. "
        f"{harness.load_note()} Wall time {(time.perf_counter() - start) / 60:.1f} min."
    )


if __name__ == "__main__":
    main()
