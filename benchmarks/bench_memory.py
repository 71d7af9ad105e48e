"""Memory stays flat: resident-set growth over many training iterations and predictions.

Trains a small NRD (timm ``test_resnet`` backbone, 32-channel neck) on synthetic scenes
through the real ``Trainer`` (data order, loss, clipping checks, logging, one checkpoint at
the end) and then calls ``model.predict`` on a uint8 image many times. The resident set
(RSS, psutil) is sampled after every call. The first calls fill allocator caches and
lazily built state, so growth is measured from the end of a warm-up to the end, and as
the least-squares slope over the calls after it; a leak of one activation map per call
(~1 MB at 128x128) would show as hundreds of MB.

    python benchmarks/bench_memory.py [--iters 300] [--predicts 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch

import nrdseg
from nrdseg.config.run import LoaderConfig, OptimConfig, TrainConfig
from nrdseg.data import build_dataset, build_transforms
from nrdseg.engine.trainer import Trainer

MIB = 2**20
SMALL = {"backbone": "test_resnet", "neck_channels": 32, "aux_channels": 16}


def rss() -> int:
    return psutil.Process().memory_info().rss


class Sampler:
    """RSS after each call of a wrapped function."""

    def __init__(self) -> None:
        self.samples: list[int] = []

    def wrap(self, function: Callable) -> Callable:
        def sampled(*args, **kwargs):
            result = function(*args, **kwargs)
            self.samples.append(rss())
            return result

        return sampled


def growth(samples: list[int], *, warmup: int) -> dict[str, float]:
    """RSS at the start, after ``warmup`` calls and at the end; growth and slope after it."""
    after = np.array(samples[warmup:], dtype=np.float64)
    slope = np.polyfit(np.arange(after.size), after, 1)[0] if after.size > 1 else 0.0
    return {
        "calls": len(samples),
        "first_mb": samples[0] / MIB,
        "warm_mb": samples[warmup] / MIB,
        "end_mb": samples[-1] / MIB,
        "peak_mb": max(samples) / MIB,
        "growth_mb": (samples[-1] - samples[warmup]) / MIB,
        "slope_kb": slope / 1024,
    }


def train(args: argparse.Namespace, work_dir: Path) -> tuple[nrdseg.Segmentor, list[int]]:
    size = (args.size, args.size)
    dataset = build_dataset(
        "synthetic",
        size=size,
        length=256,
        transforms=build_transforms(train=True, crop_size=size, scale=size),
    )
    model = nrdseg.create_model("nrd_r50", num_classes=dataset.num_classes, **SMALL)
    sampler = Sampler()
    model.loss = sampler.wrap(model.loss)
    trainer = Trainer(
        model=model,
        train_dataset=dataset,
        work_dir=work_dir,
        train_cfg=TrainConfig(
            iters=args.iters, log_interval=50, ckpt_interval=args.iters, eval_interval=0
        ),
        optim_cfg=OptimConfig(type="adamw", lr=1e-3, warmup_iters=10),
        loader_cfg=LoaderConfig(batch_size=args.batch, num_workers=args.workers),
        progress=False,
    )
    trainer.train()
    return model, sampler.samples


def predict(model: nrdseg.Segmentor, args: argparse.Namespace) -> list[int]:
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    model.eval()
    sampler = Sampler()
    run = sampler.wrap(model.predict)
    for _ in range(args.predicts):
        run(image)
    return sampler.samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=300, help="training iterations")
    parser.add_argument("--predicts", type=int, default=1000, help="model.predict calls")
    parser.add_argument("--size", type=int, default=128, help="image side")
    parser.add_argument("--batch", type=int, default=4, help="training batch")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the calls")
    parser.add_argument("--bound-mb", type=float, default=16.0, help="allowed growth after warm-up")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        model, train_samples = train(args, Path(work_dir))
    gc.collect()
    predict_samples = predict(model, args)
    seconds = time.perf_counter() - start

    rows = [
        ("train iteration", growth(train_samples, warmup=int(args.warmup * len(train_samples)))),
        ("model.predict", growth(predict_samples, warmup=int(args.warmup * len(predict_samples)))),
    ]
    print(
        f"nrdseg bench_memory: {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {args.threads} threads, {args.size}x{args.size}, batch "
        f"{args.batch}, {args.workers} workers, warm-up {args.warmup:.0%} of the calls, "
        f"{seconds:.0f} s"
    )
    print()
    print(
        "| phase | calls | RSS first (MB) | after warm-up | end | peak | growth after "
        f"warm-up (MB) | slope (KB/call) | bound {args.bound_mb:g} MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    failed = False
    for name, g in rows:
        ok = g["growth_mb"] <= args.bound_mb
        failed |= not ok
        print(
            f"| {name} | {g['calls']} | {g['first_mb']:.1f} | {g['warm_mb']:.1f} | "
            f"{g['end_mb']:.1f} | {g['peak_mb']:.1f} | {g['growth_mb']:+.1f} | "
            f"{g['slope_kb']:+.2f} | {'ok' if ok else 'EXCEEDED'} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
