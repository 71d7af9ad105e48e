"""CPU training seconds per iteration for (loader.num_workers, torch threads) pairs.

Each case trains a small NRD (ResNet-18, 128-channel neck) on synthetic 320 x 320 scenes
with random-resize-crop to 256 x 256, batch 2, through a DataLoader with that many
workers; one process per case, the cases run round-robin so that other load hits all of
them alike. The time is the mean of the steps after two warm-up steps, data included.
Use it to choose OMP_NUM_THREADS for ``nrdseg train`` on a CPU machine.

    python benchmarks/bench_cpu_threads.py [--cases 0:2,1:1,1:2] [--repeats 2] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import harness

WORKER = r"""
import sys, time, torch
from torch.utils.data import DataLoader
import nrdseg
from nrdseg.data import build_dataset, build_transforms
workers, threads, steps = (int(v) for v in sys.argv[1:4])
torch.set_num_threads(threads)
torch.manual_seed(0)
transforms = build_transforms(train=True, crop_size=(256, 256), scale=(320, 320))
data = build_dataset("synthetic", size=(320, 320), length=64, transforms=transforms)
model = nrdseg.create_model(
    "nrd_r50", num_classes=data.num_classes, backbone="resnet18", neck_channels=128
).train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
batches = iter(DataLoader(data, batch_size=2, num_workers=workers, shuffle=True))
times = []
for _ in range(steps):
    start = time.perf_counter()
    batch = next(batches)
    model.loss(batch["image"], batch["label"])["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - start)
print(sum(times[2:]) / len(times[2:]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="0:2,1:1,1:2", help="workers:threads, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="runs per case (default 2)")
    parser.add_argument("--steps", type=int, default=8, help="steps per run, 2 of them warm-up")
    args = parser.parse_args()
    cases = [tuple(int(v) for v in case.split(":")) for case in args.cases.split(",")]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    seconds: dict[tuple[int, ...], list[float]] = {case: [] for case in cases}
    for _ in range(args.repeats):
        for case in cases:
            command = [sys.executable, "-c", WORKER, *map(str, case), str(args.steps)]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            seconds[case].append(float(done.stdout.split()[-1]))
    rows = [
        (workers, threads, min(values), ", ".join(f"{v:.3f}" for v in values))
        for (workers, threads), values in seconds.items()
    ]
    print(harness.markdown_table(["num_workers", "torch threads", "best s/it", "all runs"], rows))
    print(f"\n{os.cpu_count()} logical CPUs. {harness.load_note()}")


if __name__ == "__main__":
    main()
