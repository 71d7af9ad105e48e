"""Decoder-only inference time: NRD vs DeepLabV3+ vs bilinear on precomputed encoder features.

Each head gets the ASPP output (512 channels, stride 32) and the stride-4 backbone map
(256 channels) and runs in eval mode under no_grad. Rows cover the plain NRD path (what
training runs), the folded eval path, channels-last memory, bf16 autocast and, with
``--compile``, torch.compile. On CUDA a per-patch MLP table compares the PyTorch path with
the fused Triton kernel in achieved memory bandwidth.

    python benchmarks/bench_decoders.py [--quick] [--compile] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

import torch

import harness
from nrdseg.models.heads import BilinearHead, DeepLabV3PlusHead, NRDHead
from nrdseg.models.heads.nrd_inference import controller_params, normalized_inputs
from nrdseg.ops.dynamic_mlp import patch_coordinates, per_patch_mlp
from nrdseg.ops.dynamic_mlp_inference import patch_mlp_inference
from nrdseg.ops.dynamic_mlp_triton import triton_usable

#: (input height, width, classes): Cityscapes and ADE20K test sizes.
CASES = [(1024, 2048, 19), (512, 512, 150)]
QUICK_CASES = [(512, 1024, 19), (256, 256, 150)]


def _features(height: int, width: int, device: torch.device, channels_last: bool):
    x = torch.randn(1, 512, height // 32, width // 32, device=device)
    low = torch.randn(1, 256, height // 4, width // 4, device=device)
    if channels_last:
        x, low = (t.contiguous(memory_format=torch.channels_last) for t in (x, low))
    return x, low


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def decoder_rows(args, device, height, width, classes, peak_rate):
    heads = {
        "bilinear": BilinearHead(in_channels=512, num_classes=classes),
        "DeepLabV3+": DeepLabV3PlusHead(
            in_channels=512, low_level_channels=256, num_classes=classes
        ),
        "NRD": NRDHead(in_channels=512, low_level_channels=256, num_classes=classes),
    }
    for head in heads.values():
        head.to(device).eval()
    nrd = heads["NRD"]
    # (label, head name, callable taking (x, low), channels_last, bf16, compile)
    variants: list[tuple[str, str, Callable, bool, bool, bool]] = [
        ("bilinear", "bilinear", heads["bilinear"], False, False, False),
        ("DeepLabV3+", "DeepLabV3+", heads["DeepLabV3+"], False, False, False),
        ("DeepLabV3+, channels_last", "DeepLabV3+", heads["DeepLabV3+"], True, False, False),
        ("DeepLabV3+, channels_last, bf16", "DeepLabV3+", heads["DeepLabV3+"], True, True, False),
        ("NRD plain (BN kept, NCHW params)", "NRD", nrd.forward_plain, False, False, False),
        ("NRD eval path (folded)", "NRD", nrd, False, False, False),
        ("NRD plain, channels_last", "NRD", nrd.forward_plain, True, False, False),
        ("NRD eval path, channels_last", "NRD", nrd, True, False, False),
        ("NRD eval path, channels_last, bf16", "NRD", nrd, True, True, False),
    ]
    if args.compile:
        variants += [
            (
                "DeepLabV3+, channels_last, compiled",
                "DeepLabV3+",
                heads["DeepLabV3+"],
                True,
                False,
                True,
            ),
            ("NRD eval path, channels_last, compiled", "NRD", nrd, True, False, True),
        ]
    repeats = args.repeats or (3 if args.quick else 5)
    results = []
    for label, name, fn, channels_last, bf16, compiled in variants:
        head = heads[name]
        head.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x, low = _features(height, width, device, channels_last)
        call = harness.compile_for_inference(fn) if compiled else fn

        def run(call=call, x=x, low=low, bf16=bf16):
            with torch.no_grad(), _autocast(device, bf16):
                return call(x, low)

        gmacs = harness.count_gmacs(run) if not compiled else None
        timing = harness.time_call(run, device=device, repeats=repeats, warmup=2 if compiled else 1)
        results.append((label, name, channels_last, bf16, gmacs, timing))
    base = {
        (cl, bf): t.median_ms
        for label, n, cl, bf, g, t in results
        if n == "DeepLabV3+" and "compiled" not in label
    }
    rows = []
    for label, _name, channels_last, bf16, gmacs, timing in results:
        gmacs = gmacs if gmacs is not None else float("nan")
        rate = gmacs / timing.median_ms * 1e3
        ref = base.get((channels_last, bf16))
        rows.append(
            [
                label,
                timing.median_ms,
                timing.min_ms,
                gmacs,
                rate,
                f"{100 * rate / peak_rate:.0f}%",
                f"{timing.median_ms / ref:.3f}" if ref else "-",
            ]
        )
    return rows, {label: t.median_ms for label, *_, t in results}


def _stages(
    head: NRDHead, x: torch.Tensor, low: torch.Tensor
) -> dict[str, tuple[Callable, Callable]]:
    """(plain, eval) callables per NRD stage; each stage gets the previous stage's outputs."""
    s = head.upsample_factor
    cells_h, cells_w = x.shape[-2:]
    size = (cells_h * s, cells_w * s)
    coords_one = patch_coordinates(s, device=x.device, dtype=x.dtype)
    coord_map = coords_one.repeat(1, cells_h, cells_w)[None]
    params = head.controller(x)
    mlp_input = head.input_norm(torch.cat([coord_map, head.guidance(low)], dim=1))
    fast_params = controller_params(head, x)
    coords, guidance = normalized_inputs(head, low, size=size, dtype=x.dtype)
    mlp = {"hidden_channels": head.rep_channels, "num_classes": head.num_classes}
    return {
        "controller": (lambda: head.controller(x), lambda: controller_params(head, x)),
        "guidance + input BatchNorm": (
            lambda: head.input_norm(torch.cat([coord_map, head.guidance(low)], dim=1)),
            lambda: normalized_inputs(head, low, size=size, dtype=x.dtype),
        ),
        "per-patch MLP": (
            lambda: per_patch_mlp(mlp_input, params, **mlp),
            lambda: patch_mlp_inference(
                guidance=guidance, coords=coords, params=fast_params, **mlp
            ),
        ),
        "whole decoder": (lambda: head.forward_plain(x, low), lambda: head(x, low)),
    }


def breakdown_rows(args, device, height, width, classes):
    """Where the NRD time goes, plain path vs eval path, stage by stage."""
    head = NRDHead(in_channels=512, low_level_channels=256, num_classes=classes).to(device).eval()
    repeats = args.repeats or (3 if args.quick else 5)
    rows = []
    for channels_last in (False, True):
        head.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x, low = _features(height, width, device, channels_last)
        fmt = "channels_last" if channels_last else "NCHW"
        with torch.no_grad():
            for stage, (plain, fast) in _stages(head, x, low).items():
                t_plain, t_fast = (
                    harness.time_call(fn, device=device, repeats=repeats).median_ms
                    for fn in (plain, fast)
                )
                rows.append([f"{stage} ({fmt})", t_plain, t_fast, f"{t_plain / t_fast:.2f}x"])
    return rows


def copy_bandwidth(device: torch.device) -> float:
    """GB/s of a 256 MiB device-to-device copy (read + write)."""
    src = torch.empty(64 * 2**20, device=device)
    dst = torch.empty_like(src)
    timing = harness.time_call(lambda: dst.copy_(src), device=device, repeats=10)
    return 2 * src.numel() * 4 / timing.min_ms / 1e6


def mlp_rows(args, device, height, width, classes):
    """PyTorch vs fused Triton per-patch MLP: time and bandwidth against the minimal bytes."""
    head = NRDHead(in_channels=512, low_level_channels=256, num_classes=classes).to(device).eval()
    x, low = _features(height, width, device, channels_last=False)
    with torch.no_grad():
        params = controller_params(head, x)
        size = (params.shape[-2] * 8, params.shape[-1] * 8)
        coords, guidance = normalized_inputs(head, low, size=size, dtype=params.dtype)
    out_bytes = classes * size[0] * size[1] * 4
    minimal = params.numel() * 4 + guidance.numel() * 4 + out_bytes
    copy_rate = copy_bandwidth(device)
    rows = []
    for backend in ("torch", "triton"):

        def run(backend=backend):
            return patch_mlp_inference(
                guidance=guidance,
                coords=coords,
                params=params,
                hidden_channels=16,
                num_classes=classes,
                backend=backend,
            )

        with torch.no_grad():
            timing = harness.time_call(run, device=device, repeats=args.repeats or 20)
        rate = minimal / timing.median_ms / 1e6
        rows.append(
            [backend, timing.median_ms, minimal / 2**20, rate, f"{100 * rate / copy_rate:.0f}%"]
        )
    return rows, copy_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser)
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (minutes)")
    args = parser.parse_args()
    device = harness.setup(args)
    print("# Decoder-only inference\n")
    print(harness.describe_machine(device) + "\n")
    for height, width, classes in QUICK_CASES if args.quick else CASES:
        print(f"## {height}x{width}, {classes} classes\n")
        peak_rate = harness.conv_rate_gmacs(device)
        print(
            f"Reference: a dense 3x3 256->256 conv (channels_last) runs at {peak_rate:.0f} GMAC/s.\n"
        )
        rows, times = decoder_rows(args, device, height, width, classes, peak_rate)
        headers = [
            "decoder",
            "median ms",
            "min ms",
            "GMACs",
            "GMAC/s",
            "of conv rate",
            "/ DeepLabV3+ (same format)",
        ]
        print(harness.markdown_table(headers, rows) + "\n")
        ratios = [
            ("NRD eval path / DeepLabV3+ (both NCHW)", "NRD eval path (folded)", "DeepLabV3+"),
            (
                "NRD eval path / DeepLabV3+ (both channels_last)",
                "NRD eval path, channels_last",
                "DeepLabV3+, channels_last",
            ),
            (
                "NRD eval path / NRD plain (NCHW)",
                "NRD eval path (folded)",
                "NRD plain (BN kept, NCHW params)",
            ),
        ]
        for text, a, b in ratios:
            print(f"- {text}: **{times[a] / times[b]:.3f}**")
        print()
        print("NRD stages, plain path vs eval path (median ms):\n")
        print(
            harness.markdown_table(
                ["stage", "plain", "eval", "speed-up"],
                breakdown_rows(args, device, height, width, classes),
            )
        )
        print()
        if device.type == "cuda" and triton_usable(torch.empty(1, device=device)):
            rows, copy_rate = mlp_rows(args, device, height, width, classes)
            print(f"Per-patch MLP alone; device copy bandwidth {copy_rate:.0f} GB/s:\n")
            print(
                harness.markdown_table(
                    ["backend", "median ms", "minimal MiB", "GB/s", "of copy bandwidth"], rows
                )
            )
            print()


if __name__ == "__main__":
    main()
