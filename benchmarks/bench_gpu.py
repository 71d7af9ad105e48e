"""Every row of issue 15's GPU table in one process: images/s and peak memory.

Sections (1024x2048, 19 classes unless said; ``--quick`` shrinks every size and swaps in
tiny models so that the script runs on a CPU in seconds, to test it):

1. ``nrdseg predict``'s own code (``predict_files``) on PNG frames written to a temporary
   folder, batch 8: the plain path (no workers, one writer thread, fp32 NCHW) against the
   fast one (DataLoader workers, writer threads, bf16 + channels-last, then compiled).
2. nrd_r50 and SMP's ``DeepLabV3Plus("resnet50")`` alone, batch 8 and batch 1: eager fp32
   NCHW, eager bf16 channels-last, compiled bf16 channels-last. nrd_r50 runs
   ``predict_labels`` (labels, what predict writes) and, eager only, ``forward`` (float
   logits).
3. Decoders alone on precomputed encoder features: NRD vs DeepLabV3+, batch 1 and 8, in
   NCHW fp32, channels-last fp32 and channels-last bf16; 512x512 with 150 classes, batch 1.
4. The per-patch MLP alone (Triton kernel on CUDA, the PyTorch path elsewhere), batch
   1 / 8 / 32: its bandwidth as a share of a device-to-device copy's.
5. ``nrdseg train`` (``train_from_config`` on the official Cityscapes config, frames
   written to a temporary Cityscapes layout, batch 8, bf16) seconds per iteration
   against the GPU-only step on a fixed batch.

Each section times its cases round-robin (``harness.time_interleaved``) with cuDNN
autotuning on; peak memory is measured afterwards, one call per case with
``cudnn.benchmark`` off (autotuning workspaces would otherwise set the peak), as the
memory a call allocates above what is held before it (CUDA only; "-" on CPU).

    python benchmarks/bench_gpu.py [--device cuda] [--quick] [--workers 12] [--no-compile]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import harness
import nrdseg
from nrdseg.deploy.predict import predict_files
from nrdseg.evaluation import runtime
from nrdseg.evaluation.evaluate import InferenceSpeed
from nrdseg.models.heads import DeepLabV3PlusHead, NRDHead
from nrdseg.ops.dynamic_mlp_triton import triton_usable

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cityscapes" / "nrd_r50.yaml"
#: What ``--quick`` swaps in: the tests' tiny backbone and widths (see tests/conftest.py).
TINY = {"backbone": "test_resnet", "neck_channels": 32, "aux_channels": 16}
TINY_NRD = {**TINY, "controller_channels": 32}


@dataclass
class Sizes:
    full: tuple[int, int]  # Cityscapes frame (H, W)
    ade: tuple[int, int]  # ADE20K test size
    crop: tuple[int, int]  # training crop
    frames: int  # PNG frames for predict
    batch: int  # the batch of 8
    train_frames: int
    train_iters: int
    repeats: int


FULL = Sizes((1024, 2048), (512, 512), (512, 1024), 48, 8, 24, 40, 10)
QUICK = Sizes((64, 128), (64, 64), (32, 64), 6, 2, 4, 4, 2)


@dataclass
class Case:
    """One timed callable; ``images`` per call turns milliseconds into images/s."""

    label: str
    fn: Callable[[], object]
    images: int


def _fmt(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def _no_grad_call(fn: Callable, x: torch.Tensor, device: torch.device, amp: str) -> Callable:
    def call():
        with torch.no_grad(), runtime.autocast(device, amp):
            return fn(x)

    return call


def measure(cases: list[Case], *, device: torch.device, repeats: int, warmup: int = 1) -> list:
    """Rows ``[label, ms per call, images/s, peak MiB]``; see the module doc for the method."""
    torch.backends.cudnn.benchmark = True
    timings = harness.time_interleaved(
        {c.label: c.fn for c in cases}, device=device, repeats=repeats, warmup=warmup
    )
    torch.backends.cudnn.benchmark = False
    rows = []
    for case in cases:
        peak = "-"
        if device.type == "cuda":
            torch.cuda.empty_cache()
            peak = harness.peak_bytes(case.fn, device=device) / harness.MIB
        ms = timings[case.label].median_ms
        rows.append([case.label, ms, case.images / ms * 1e3, peak])
    torch.backends.cudnn.benchmark = True
    return rows


def print_rows(title: str, rows: list) -> dict[str, float]:
    """Print a section's table; returns label -> median ms."""
    print(f"## {title}\n")
    headers = ["case", "median ms", "images/s", "peak MiB"]
    print(harness.markdown_table(headers, rows) + "\n", flush=True)  # kept if a later part dies
    return {row[0]: row[1] for row in rows}


def compiler(args: argparse.Namespace) -> Callable[[Callable], Callable]:
    return lambda fn: runtime.CompiledOrEager(fn, backend=args.compile_backend)


# -- 1. predict --------------------------------------------------------------------------
def write_frames(folder: Path, count: int, size: tuple[int, int]) -> None:
    """``count`` PNG frames: four distinct smooth images with noise, copied round-robin."""
    rng = np.random.default_rng(0)
    height, width = size
    encoded = []
    for _ in range(min(4, count)):
        coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = np.repeat(np.repeat(coarse, 16, 0), 16, 1)[:height, :width]
        noise = rng.integers(-12, 13, image.shape)
        pixels = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        path = folder / f"frame_{len(encoded):03d}.png"
        Image.fromarray(pixels).save(path, compress_level=1)
        encoded.append(path.read_bytes())
    for i in range(len(encoded), count):
        (folder / f"frame_{i:03d}.png").write_bytes(encoded[i % len(encoded)])


def predict_section(args, device, sizes: Sizes, model, tmp: Path) -> dict[str, float]:
    frames = tmp / "frames"
    frames.mkdir()
    write_frames(frames, sizes.frames, sizes.full)
    out = tmp / "pred"

    plain_model, fast_model = copy.deepcopy(model), copy.deepcopy(model)

    def run(net, **options) -> Callable[[], object]:
        # One copy per memory format: converting back and forth would make a compiled
        # model recompile on every call.
        return lambda: predict_files(
            net, [frames], out_dir=out, batch_size=sizes.batch, progress=False, **options
        )

    plain = {"writers": 1, "speed": InferenceSpeed(channels_last=False)}
    fast_speed = InferenceSpeed(workers=args.workers, amp="bf16", channels_last=True)
    fast = {"writers": 8, "speed": fast_speed}
    cases = [
        Case(
            "predict: plain (no workers, 1 writer, fp32 NCHW)",
            run(plain_model, **plain),
            sizes.frames,
        ),
        Case(
            "predict: workers + writers, bf16, channels_last",
            run(fast_model, **fast),
            sizes.frames,
        ),
    ]
    if not args.no_compile:
        compiled = run(fast_model, writers=8, speed=dataclasses.replace(fast_speed, compile=True))
        cases.append(Case("predict: same, --compile", compiled, sizes.frames))
    times = print_rows(
        f"1. predict on {sizes.frames} PNG frames {sizes.full[0]}x{sizes.full[1]}, "
        f"batch {sizes.batch}",
        measure(cases, device=device, repeats=2 if not args.quick else 1),
    )
    return times


# -- 2. whole models ---------------------------------------------------------------------
def build_models(args, device) -> tuple[torch.nn.Module, torch.nn.Module]:
    import segmentation_models_pytorch as smp

    options = TINY_NRD if args.quick else {}
    nrd = nrdseg.create_model("nrd_r50", num_classes=19, **options).to(device).eval()
    encoder = "resnet18" if args.quick else "resnet50"
    peer = smp.DeepLabV3Plus(encoder, encoder_weights=None, classes=19).to(device).eval()
    return nrd, peer


def model_cases(args, device, nrd, peer, batch: int, size: tuple[int, int]) -> list[Case]:
    """Each variant runs its own copy of each model, in its memory format."""
    compile_fn = compiler(args)
    variants = [("eager fp32 NCHW", False, "none", False), ("eager bf16 CL", True, "bf16", False)]
    if not args.no_compile:
        variants.append(("compiled bf16 CL", True, "bf16", True))
    cases = []
    for name, channels_last, amp, compiled in variants:
        fmt = _fmt(channels_last)
        x = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=fmt)
        nrd_copy, peer_copy = (copy.deepcopy(m).to(memory_format=fmt) for m in (nrd, peer))
        for label, fn in (
            ("nrd_r50 labels", nrd_copy.predict_labels),
            ("nrd_r50 logits", nrd_copy.forward),
            ("SMP DeepLabV3+", peer_copy.forward),
        ):
            if compiled and label == "nrd_r50 logits":
                continue  # each compile takes a minute on the GPU machine: labels are the target
            fn = compile_fn(fn) if compiled else fn
            cases.append(Case(f"{label}, {name}", _no_grad_call(fn, x, device, amp), batch))
    return cases


# -- 3. decoders -------------------------------------------------------------------------
def decoder_cases(device, batch: int, size: tuple[int, int], classes: int) -> list[Case]:
    heads = {
        "NRD": NRDHead(in_channels=512, low_level_channels=256, num_classes=classes),
        "DeepLabV3+": DeepLabV3PlusHead(
            in_channels=512, low_level_channels=256, num_classes=classes
        ),
    }
    cases = []
    for fmt_name, channels_last, amp in (
        ("NCHW fp32", False, "none"),
        ("CL fp32", True, "none"),
        ("CL bf16", True, "bf16"),
    ):
        fmt = _fmt(channels_last)
        x = torch.randn(batch, 512, size[0] // 32, size[1] // 32, device=device)
        low = torch.randn(batch, 256, size[0] // 4, size[1] // 4, device=device)
        x, low = x.contiguous(memory_format=fmt), low.contiguous(memory_format=fmt)
        for name, head in heads.items():
            module = copy.deepcopy(head).to(device).eval().to(memory_format=fmt)

            def call(module=module, x=x, low=low, amp=amp):
                with torch.no_grad(), runtime.autocast(device, amp):
                    return module(x, low)

            cases.append(Case(f"{name}, batch {batch}, {fmt_name}", call, batch))
    return cases


# -- 4. per-patch MLP bandwidth ------------------------------------------------------------
def mlp_rows(args, device, sizes: Sizes) -> tuple[list, float]:
    """Per batch: time and GB/s of the minimal bytes (parameters, guidance, logits)."""
    import bench_decoders

    classes = 19
    head = NRDHead(in_channels=512, low_level_channels=256, num_classes=classes).to(device).eval()
    backend = "triton" if triton_usable(torch.empty(1, device=device)) else "torch"
    copy_rate = bench_decoders.copy_bandwidth(device)
    rows = []
    for batch in (1, 2) if args.quick else (1, 8, 32):
        height, width = sizes.full
        x = torch.randn(batch, 512, height // 32, width // 32, device=device)
        low = torch.randn(batch, 256, height // 4, width // 4, device=device)
        runner, minimal = bench_decoders.mlp_runner(head, x, low)
        with torch.no_grad():
            timing = harness.time_call(runner(backend), device=device, repeats=sizes.repeats)
        rate = minimal / timing.median_ms / 1e6
        rows.append(
            [f"{backend}, batch {batch}", timing.median_ms, rate, f"{100 * rate / copy_rate:.0f}%"]
        )
        del x, low, runner
    return rows, copy_rate


# -- 5. training -------------------------------------------------------------------------
def write_cityscapes(root: Path, count: int, size: tuple[int, int]) -> None:
    """A Cityscapes train split of ``count`` frames with random labelTrainIds masks."""
    images = root / "leftImg8bit" / "train" / "aachen"
    masks = root / "gtFine" / "train" / "aachen"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    write_frames(images, count, size)
    rng = np.random.default_rng(1)
    for i, frame in enumerate(sorted(images.iterdir())):
        name = f"aachen_{i:06d}_000019"
        frame.rename(images / f"{name}_leftImg8bit.png")
        coarse = rng.integers(0, 19, (size[0] // 32 + 1, size[1] // 32 + 1), dtype=np.uint8)
        mask = np.repeat(np.repeat(coarse, 32, 0), 32, 1)[: size[0], : size[1]]
        Image.fromarray(mask).save(masks / f"{name}_gtFine_labelTrainIds.png")


def train_section(args, device, sizes: Sizes, tmp: Path) -> dict[str, float]:
    from nrdseg.config.run import load_config
    from nrdseg.engine.build import train_from_config

    root = tmp / "cityscapes"
    write_cityscapes(root, sizes.train_frames, sizes.full)
    log_every = max(1, sizes.train_iters // 4)
    overrides = {
        "data.train.root": str(root),
        "data.val": None,
        "data.check_labels": False,
        "model.pretrained": False,
        "loader.batch_size": sizes.batch,
        "loader.num_workers": 0 if args.quick else args.workers,
        "train.amp": "bf16",
        "train.iters": sizes.train_iters,
        "train.log_interval": log_every,
        "train.ckpt_interval": sizes.train_iters,
        "optim.warmup_iters": 0,
    }
    if args.quick:
        overrides |= {"data.transforms.crop_size": list(sizes.crop), "model.options": TINY_NRD}
        overrides["data.transforms.scale"] = [sizes.full[1], sizes.full[0]]
    config = load_config(CONFIG, overrides)
    work_dir = tmp / "train"
    train_from_config(config, work_dir, progress=False)
    logged = [
        json.loads(line)
        for line in (work_dir / "metrics.jsonl").read_text().splitlines()
        if "time_per_iter" in line
    ]
    # The first window holds start-up (worker forks, cuDNN autotuning): left out when later ones exist.
    steady = [e["time_per_iter"] for e in logged[1:]] or [logged[-1]["time_per_iter"]]
    trainer_s = float(np.median(steady))

    options = TINY_NRD if args.quick else {}
    model = nrdseg.create_model("nrd_r50", num_classes=19, **options).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(sizes.batch, 3, *sizes.crop, device=device)
    labels = torch.randint(0, 19, (sizes.batch, *sizes.crop), device=device)

    def step():
        with runtime.autocast(device, "bf16"):
            loss = model.loss(images, labels)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    torch.backends.cudnn.benchmark = True
    gpu_s = harness.time_call(step, device=device, repeats=sizes.repeats, warmup=2).median_ms / 1e3
    rows = [
        ["nrdseg train (train_from_config), s/it", trainer_s, sizes.batch / trainer_s],
        ["model step alone (fixed batch on the device), s/it", gpu_s, sizes.batch / gpu_s],
    ]
    print(f"## 5. training, crop {sizes.crop[0]}x{sizes.crop[1]}, batch {sizes.batch}, bf16\n")
    print(harness.markdown_table(["case", "s/it", "images/s"], rows) + "\n")
    return {"trainer": trainer_s, "step": gpu_s}


def targets(sizes: Sizes, times: dict[str, float], mlp: list, train: dict | None) -> list:
    """Issue 15's targets: ``[target, measured, met]`` where the run measured them."""

    def best(*labels: str) -> float:
        return min(times.get(label, float("inf")) for label in labels)

    rows = []
    predict = best(*(k for k in times if k.startswith("predict:")))
    if predict < float("inf"):
        rate = sizes.frames / predict * 1e3
        rows.append(["predict >= 100 img/s", f"{rate:.1f} img/s", rate >= 100])
    nrd_1 = best("b1 nrd_r50 labels, eager bf16 CL", "b1 nrd_r50 labels, compiled bf16 CL")
    smp_1 = best("b1 SMP DeepLabV3+, eager fp32 NCHW", "b1 SMP DeepLabV3+, eager bf16 CL")
    rows.append(
        [
            "nrd_r50 bf16 batch 1 <= 0.5 x SMP eager (its faster format)",
            f"{nrd_1 / smp_1:.3f}",
            nrd_1 <= 0.5 * smp_1,
        ]
    )
    batch = sizes.batch
    nrd_8 = best(
        f"b{batch} nrd_r50 labels, eager bf16 CL", f"b{batch} nrd_r50 labels, compiled bf16 CL"
    )
    rate = batch / nrd_8 * 1e3
    rows.append([f"nrd_r50 batch {batch} bf16 >= 400 img/s", f"{rate:.1f} img/s", rate >= 400])
    worst = max(
        times[f"dec NRD, batch 1, {fmt}"] / times[f"dec DeepLabV3+, batch 1, {fmt}"]
        for fmt in ("NCHW fp32", "CL fp32", "CL bf16")
    )
    rows.append(
        [
            "NRD decoder <= 0.3 x DeepLabV3+ decoder, batch 1, every format",
            f"{worst:.3f}",
            worst <= 0.3,
        ]
    )
    share = [row for row in mlp if row[0].endswith(f"batch {batch}")]
    if share:
        rows.append(
            [
                f"per-patch MLP >= 50% of copy bandwidth, batch {batch}",
                share[0][3],
                float(share[0][3][:-1]) >= 50,
            ]
        )
    if train is not None:
        slower = train["trainer"] / train["step"]
        rows.append(["trainer s/it within 15% of the model step", f"{slower:.3f}", slower <= 1.15])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser)
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    parser.add_argument("--no-compile", action="store_true", help="leave out compiled rows")
    parser.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend (the test uses 'eager' to stay fast on CPU)",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["predict", "train"])
    args = parser.parse_args()
    device = harness.setup(args)
    sizes = QUICK if args.quick else FULL
    start = time.perf_counter()
    print("# GPU benchmark (issue 15)\n")
    print(harness.describe_machine(device) + "\n")
    nrd, peer = build_models(args, device)
    times: dict[str, float] = {}  # section-prefixed label -> median ms
    train = None
    with tempfile.TemporaryDirectory(prefix="nrdseg-bench-") as tmp:
        if "predict" not in args.skip:
            times |= predict_section(args, device, sizes, nrd, Path(tmp))
        for batch in (sizes.batch, 1):
            title = f"2. whole models, batch {batch}, {sizes.full[0]}x{sizes.full[1]}"
            cases = model_cases(args, device, nrd, peer, batch, sizes.full)
            rows = measure(cases, device=device, repeats=sizes.repeats)
            times |= {f"b{batch} {k}": v for k, v in print_rows(title, rows).items()}
        for batch, size, classes in (
            (1, sizes.full, 19),
            (sizes.batch, sizes.full, 19),
            (1, sizes.ade, 150),
        ):
            title = f"3. decoders, {size[0]}x{size[1]}, {classes} classes, batch {batch}"
            rows = measure(
                decoder_cases(device, batch, size, classes), device=device, repeats=sizes.repeats
            )
            prefix = "dec" if size == sizes.full else f"dec{classes}"
            times |= {f"{prefix} {k}": v for k, v in print_rows(title, rows).items()}
        mlp, copy_rate = mlp_rows(args, device, sizes)
        print(f"## 4. per-patch MLP alone; device copy bandwidth {copy_rate:.0f} GB/s\n")
        headers = ["backend, batch", "median ms", "GB/s (minimal bytes)", "of copy bandwidth"]
        print(harness.markdown_table(headers, mlp) + "\n", flush=True)
        if "train" not in args.skip:
            train = train_section(args, device, sizes, Path(tmp))

    ratios = []
    for batch in (sizes.batch, 1):
        for variant in ("eager fp32 NCHW", "eager bf16 CL", "compiled bf16 CL"):
            a, b = f"b{batch} nrd_r50 labels, {variant}", f"b{batch} SMP DeepLabV3+, {variant}"
            ratios.append((f"nrd_r50 labels / SMP DeepLabV3+, batch {batch}, {variant}", a, b))
    for prefix, batch in (("dec", 1), ("dec", sizes.batch), ("dec150", 1)):
        for fmt in ("NCHW fp32", "CL fp32", "CL bf16"):
            a, b = (
                f"{prefix} NRD, batch {batch}, {fmt}",
                f"{prefix} DeepLabV3+, batch {batch}, {fmt}",
            )
            where = "150 classes" if prefix == "dec150" else "19 classes"
            ratios.append((f"NRD / DeepLabV3+ decoder, {where}, batch {batch}, {fmt}", a, b))
    for batch in (1, sizes.batch):
        for fmt in ("CL fp32", "CL bf16"):
            a, b = f"dec NRD, batch {batch}, {fmt}", f"dec NRD, batch {batch}, NCHW fp32"
            ratios.append((f"NRD decoder {fmt} / NCHW fp32, batch {batch}", a, b))
    ratios = [
        (text, f"{times[a] / times[b]:.3f}") for text, a, b in ratios if a in times and b in times
    ]
    print("## Ratios (time / time)\n")
    print(harness.markdown_table(["", "ratio"], ratios) + "\n")
    print("## Targets (issue 15)\n")
    rows = [[t, m, "met" if ok else "NOT met"] for t, m, ok in targets(sizes, times, mlp, train)]
    print(harness.markdown_table(["target", "measured", ""], rows) + "\n")
    print(f"Whole run: {time.perf_counter() - start:.0f} s. " + harness.load_note())


if __name__ == "__main__":
    main()
