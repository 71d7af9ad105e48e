"""Full-model inference: nrd_r50 vs dlv3p_r50_d8 vs SMP's DeepLabV3Plus(resnet50).

Eval mode, no_grad, one image; time is the median of several calls after a warm-up, peak
memory is measured in a fresh process per model (see ``harness``). Variants: NCHW fp32
(the default), channels-last (model and input), channels-last with bf16 autocast and,
when asked for, channels-last torch.compile (inductor, weights frozen so BatchNorms fold).

    python benchmarks/bench_models.py [--quick] [--full] [--threads 2] [--models ...]
        [--variants "NCHW fp32" "channels_last" "channels_last bf16" "channels_last compiled"]
"""

from __future__ import annotations

import argparse
import contextlib

import torch

import harness
import nrdseg

MODELS = ["nrd_r50", "dlv3p_r50_d8", "smp_deeplabv3plus_r50", "dlv3p_r50", "bilinear_r50"]
SMP_NAME = "smp_deeplabv3plus_r50"
VARIANTS = ["NCHW fp32", "channels_last", "channels_last bf16", "channels_last compiled"]


def build(name: str, device: torch.device) -> torch.nn.Module:
    if name == SMP_NAME:
        import segmentation_models_pytorch as smp

        model = smp.DeepLabV3Plus("resnet50", encoder_weights=None, classes=19)
    else:
        model = nrdseg.create_model(name, num_classes=19)
    return model.to(device).eval()


def prepare(model: torch.nn.Module, variant: str, height: int, width: int, device: torch.device):
    """(callable running one inference, its input) for a variant name."""
    channels_last = "channels_last" in variant
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    images = torch.randn(1, 3, height, width, device=device).contiguous(memory_format=fmt)
    call = harness.compile_for_inference(model) if "compiled" in variant else model
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if "bf16" in variant
        else contextlib.nullcontext()
    )

    def run():
        with torch.no_grad(), autocast:
            return call(images)

    return run


def sizes(args) -> list[tuple[int, int]]:
    if args.quick:
        return [(256, 512)]
    return [(512, 1024)] + ([(1024, 2048)] if args.full else [])


def worker(spec: str, args) -> None:
    name, height, width = spec.split(":")
    device = harness.setup(args)
    run = prepare(build(name, device), "NCHW fp32", int(height), int(width), device)
    harness.report_peak(run, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser)
    parser.add_argument("--full", action="store_true", help="also 1024x2048 (slow on CPU)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=VARIANTS[:3],
        help="the compiled variant takes minutes per model",
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args)
        return
    device = harness.setup(args)
    repeats = args.repeats or (2 if args.quick else 3)
    variants = args.variants
    print("# Full-model inference (1 image, 19 classes)\n")
    print(harness.describe_machine(device) + "\n")
    for height, width in sizes(args):
        print(f"## {height}x{width}\n")
        models = {name: build(name, device) for name in args.models}
        rows = {}
        for name, model in models.items():
            gmacs = harness.count_gmacs(prepare(model, "NCHW fp32", height, width, device))
            spec = f"{name}:{height}:{width}"
            rows[name] = [
                name,
                gmacs,
                harness.peak_in_subprocess(__file__, spec, args) / harness.MIB,
            ]
        times = {}
        for variant in variants:  # models interleaved within a variant, see time_interleaved
            runners = {
                name: prepare(model, variant, height, width, device)
                for name, model in models.items()
            }
            timings = harness.time_interleaved(runners, device=device, repeats=repeats)
            for name, timing in timings.items():
                times[name, variant] = timing.median_ms
                rows[name].append(timing.median_ms)
        del models
        rows = list(rows.values())
        headers = ["model", "GMACs", "peak MiB (NCHW fp32)"] + [f"ms, {v}" for v in variants]
        print(harness.markdown_table(headers, rows) + "\n")
        for variant in variants:
            if ("nrd_r50", variant) not in times:
                continue
            nrd = times["nrd_r50", variant]
            parts = [f"nrd_r50 {1e3 / nrd:.2f} images/s"]
            for other in ("dlv3p_r50_d8", SMP_NAME):
                if (other, variant) in times:
                    parts.append(f"nrd_r50 / {other} = **{nrd / times[other, variant]:.3f}**")
            print(f"- {variant}: " + ", ".join(parts))
        print()
    print(harness.load_note())


if __name__ == "__main__":
    main()
