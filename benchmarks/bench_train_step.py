"""One training step (forward + backward + SGD step): nrd_r50 vs dlv3p_r50 vs bilinear_r50.

Batch of 2 crops (BatchNorm in the ASPP needs >= 2), 19 classes, auxiliary head on, SGD
with momentum and weight decay as in the paper's recipe. Time is the median over several
steps after a warm-up step; peak memory is one step's peak above what the model and the
optimizer already hold, in a fresh process per model (see ``harness``).

    python benchmarks/bench_train_step.py [--quick] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib

import torch

import harness
import nrdseg

MODELS = ["nrd_r50", "dlv3p_r50", "bilinear_r50"]
VARIANTS = ["NCHW fp32", "channels_last", "channels_last bf16"]


def make_step(name: str, variant: str, crop: tuple[int, int], device: torch.device):
    """A callable doing one optimizer step of ``name`` on a fixed random batch."""
    fmt = torch.channels_last if "channels_last" in variant else torch.contiguous_format
    model = nrdseg.create_model(name, num_classes=19).to(device).train()
    model.to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(2, 3, *crop, device=device).contiguous(memory_format=fmt)
    labels = torch.randint(0, 19, (2, *crop), device=device)

    def step():
        autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if "bf16" in variant
            else contextlib.nullcontext()
        )
        with autocast:
            loss = model.loss(images, labels)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def crop_size(args) -> tuple[int, int]:
    return (256, 256) if args.quick else (512, 512)


def worker(name: str, args) -> None:
    device = harness.setup(args)
    harness.report_peak(make_step(name, "NCHW fp32", crop_size(args), device), device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args)
        return
    device = harness.setup(args)
    crop = crop_size(args)
    repeats = args.repeats or (2 if args.quick else 3)
    print(f"# One training step, batch 2 x {crop[0]}x{crop[1]}, 19 classes\n")
    print(harness.describe_machine(device) + "\n")
    rows = {}
    for name in MODELS:
        gmacs = harness.count_gmacs(make_step(name, "NCHW fp32", crop, device))
        rows[name] = [name, gmacs, harness.peak_in_subprocess(__file__, name, args) / harness.MIB]
    times = {}
    for variant in VARIANTS:  # models interleaved within a variant, see time_interleaved
        steps = {name: make_step(name, variant, crop, device) for name in MODELS}
        timings = harness.time_interleaved(steps, device=device, repeats=repeats)
        for name, timing in timings.items():
            times[name, variant] = timing.median_ms
            rows[name].append(timing.median_ms)
        del steps
    rows = list(rows.values())
    headers = ["model", "GMACs (fwd+bwd)", "peak MiB (NCHW fp32)"] + [f"ms, {v}" for v in VARIANTS]
    print(harness.markdown_table(headers, rows) + "\n")
    for variant in VARIANTS:
        nrd = times["nrd_r50", variant]
        print(
            f"- {variant}: nrd_r50 / dlv3p_r50 = **{nrd / times['dlv3p_r50', variant]:.3f}**, "
            f"nrd_r50 / bilinear_r50 = **{nrd / times['bilinear_r50', variant]:.3f}**"
        )
    print("\n" + harness.load_note())


if __name__ == "__main__":
    main()
