"""Decoder-only inference time: every zoo decoder, and NRD's paths, on precomputed features.

The first table times every decoder of the zoo (one row per decoder, ResNet-50 widths:
the maps each head reads, e.g. the ASPP output at 512 channels, stride 32, and the
backbone's stride-4 map at 256 channels), eval mode, no_grad, NCHW fp32, against the
DeepLabV3+ decoder and NRD in the same run. The second compares NRD with DeepLabV3+ and
bilinear in detail: the plain NRD path (what training runs), the folded eval path,
channels-last memory, bf16 autocast and, with ``--compile``, torch.compile. On CUDA a
per-patch MLP table compares the PyTorch path with the fused Triton kernel in achieved
memory bandwidth.

    python benchmarks/bench_decoders.py [--quick] [--compile] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

import harness
from nrdseg.analysis.decoder_costs import encoder_maps
from nrdseg.analysis.flops import model_flops
from nrdseg.models.heads import BilinearHead, DeepLabV3PlusHead, NRDHead
from nrdseg.models.heads.nrd_inference import controller_params, normalized_inputs
from nrdseg.models.zoo import create_model, list_models, model_spec
from nrdseg.ops.dynamic_mlp import patch_coordinates, per_patch_mlp
from nrdseg.ops.dynamic_mlp_inference import patch_mlp_inference
from nrdseg.ops.dynamic_mlp_triton import triton_usable
from nrdseg.ops.resize import resize

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


@dataclass(frozen=True)
class Variant:
    label: str
    head: str
    plain: bool = False  # NRD's training-path forward instead of the eval path
    channels_last: bool = False
    bf16: bool = False
    compiled: bool = False


VARIANTS = [
    Variant("bilinear", "bilinear"),
    Variant("DeepLabV3+", "DeepLabV3+"),
    Variant("DeepLabV3+, channels_last", "DeepLabV3+", channels_last=True),
    Variant("DeepLabV3+, channels_last, bf16", "DeepLabV3+", channels_last=True, bf16=True),
    Variant("NRD plain (BN kept, NCHW params)", "NRD", plain=True),
    Variant("NRD eval path (folded)", "NRD"),
    Variant("NRD plain, channels_last", "NRD", plain=True, channels_last=True),
    Variant("NRD eval path, channels_last", "NRD", channels_last=True),
    Variant("NRD eval path, channels_last, bf16", "NRD", channels_last=True, bf16=True),
]
#: The reference conv's key among the timed cases.
REFERENCE = "reference conv"
COMPILED = [
    Variant("DeepLabV3+, channels_last, compiled", "DeepLabV3+", channels_last=True, compiled=True),
    Variant("NRD eval path, channels_last, compiled", "NRD", channels_last=True, compiled=True),
]


def zoo_decoders() -> list[str]:
    """One zoo name per decoder on the ResNet-50 encoder (no NRD ablation, no dilated or
    deeper encoder), the heads of the README's comparison tables."""
    return [
        name
        for name in list_models()
        if "_r50" in name and not name.startswith("nrd_r50_") and not name.endswith("_d8")
    ]


def zoo_rows(args, device, height, width, classes):
    """Every zoo decoder from encoder maps to labels at the input size (its own output,
    the bilinear resize the model applies, argmax): median ms, GMACs as ``nrdseg flops``
    counts them, and its time over the DeepLabV3+ decoder's and over NRD's, all timed
    round-robin in one run."""
    runners, gmacs = {}, {}
    for name in zoo_decoders():
        model = create_model(name, num_classes=classes, aux=False)
        head = model.decoder.to(device).eval()
        maps = [
            m.to(device)
            for m in encoder_maps(
                model.feature_shapes, head.in_features, height=height, width=width
            )
        ]
        runners[name] = lambda head=head, maps=maps: resize(head(*maps), (height, width)).argmax(
            dim=1
        )
        gmacs[name] = model_flops(name, num_classes=classes, height=height, width=width).decoder
    with torch.no_grad():
        timings = harness.time_interleaved(
            runners, device=device, repeats=args.repeats or (3 if args.quick else 5)
        )
    base, nrd = timings["dlv3p_r50"].median_ms, timings["nrd_r50"].median_ms
    return [
        [
            f"`{name}`",
            model_spec(name).head.__name__,
            gmacs[name],
            timings[name].median_ms,
            timings[name].min_ms,
            f"{timings[name].median_ms / base:.3f}",
            f"{timings[name].median_ms / nrd:.2f}",
        ]
        for name in runners
    ]


def _head(name: str, classes: int) -> torch.nn.Module:
    if name == "bilinear":
        return BilinearHead(in_channels=512, num_classes=classes)
    if name == "DeepLabV3+":
        return DeepLabV3PlusHead(in_channels=512, low_level_channels=256, num_classes=classes)
    return NRDHead(in_channels=512, low_level_channels=256, num_classes=classes)


def _runner(variant: Variant, height: int, width: int, classes: int, device: torch.device):
    """A no-argument callable running one decoder forward as ``variant`` says."""
    fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
    head = _head(variant.head, classes).to(device).eval().to(memory_format=fmt)
    fn = head.forward_plain if variant.plain else head
    fn = harness.compile_for_inference(fn) if variant.compiled else fn
    x, low = _features(height, width, device, variant.channels_last)
    maps = {"neck": x, "stride4": low}
    inputs = [maps[name] for name in head.in_features]

    def run():
        with torch.no_grad(), _autocast(device, variant.bf16):
            return fn(*inputs)

    return run


def decoder_rows(args, device, height, width, classes):
    variants = VARIANTS + (COMPILED if args.compile else [])
    runners = {v.label: _runner(v, height, width, classes, device) for v in variants}
    gmacs: dict[str, float] = {}
    for v in VARIANTS:  # the first variant of each head is its fp32 one
        if v.head not in gmacs:
            gmacs[v.head] = harness.count_gmacs(runners[v.label])
    runners[REFERENCE], gmacs[REFERENCE] = harness.reference_conv(device)
    timings = harness.time_interleaved(
        runners,
        device=device,
        repeats=args.repeats or (3 if args.quick else 5),
        warmup=2 if args.compile else 1,
    )
    base = {
        (v.channels_last, v.bf16): timings[v.label].median_ms
        for v in variants
        if v.head == "DeepLabV3+" and not v.compiled
    }
    peak_rate = gmacs[REFERENCE] / timings[REFERENCE].median_ms * 1e3
    rows = []
    for v in variants:
        timing = timings[v.label]
        rate = gmacs[v.head] / timing.median_ms * 1e3
        ref = base[v.channels_last, v.bf16]
        rows.append(
            [
                v.label,
                timing.median_ms,
                timing.min_ms,
                gmacs[v.head],
                rate,
                f"{100 * rate / peak_rate:.0f}%",
                f"{timing.median_ms / ref:.3f}",
            ]
        )
    return rows, {label: t.median_ms for label, t in timings.items()}, peak_rate


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
    repeats = args.repeats or (3 if args.quick else 5)
    rows = []
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        head = _head("NRD", classes).to(device).eval().to(memory_format=fmt)
        x, low = _features(height, width, device, channels_last)
        with torch.no_grad():
            stages = _stages(head, x, low)
            fns = {(stage, i): pair[i] for stage, pair in stages.items() for i in (0, 1)}
            timings = harness.time_interleaved(fns, device=device, repeats=repeats)
        for stage in stages:
            plain, fast = (timings[stage, i].median_ms for i in (0, 1))
            fmt_name = "channels_last" if channels_last else "NCHW"
            rows.append([f"{stage} ({fmt_name})", plain, fast, f"{plain / fast:.2f}x"])
    return rows


def copy_bandwidth(device: torch.device) -> float:
    """GB/s of a 256 MiB device-to-device copy (read + write)."""
    src = torch.empty(64 * 2**20, device=device)
    dst = torch.empty_like(src)
    timing = harness.time_call(lambda: dst.copy_(src), device=device, repeats=10)
    return 2 * src.numel() * 4 / timing.min_ms / 1e6


def mlp_runner(
    head: NRDHead, x: torch.Tensor, low: torch.Tensor
) -> tuple[Callable[[str], Callable[[], torch.Tensor]], int]:
    """(backend -> callable running the per-patch MLP alone on these features, the
    minimal bytes it moves: parameters and guidance read, fp32 logits written)."""
    with torch.no_grad():
        params = controller_params(head, x)
        size = (params.shape[-2] * 8, params.shape[-1] * 8)
        coords, guidance = normalized_inputs(head, low, size=size, dtype=params.dtype)
    out_bytes = x.shape[0] * head.num_classes * size[0] * size[1] * 4
    minimal = params.numel() * 4 + guidance.numel() * 4 + out_bytes

    def runner(backend: str) -> Callable[[], torch.Tensor]:
        return lambda: patch_mlp_inference(
            guidance=guidance,
            coords=coords,
            params=params,
            hidden_channels=head.rep_channels,
            num_classes=head.num_classes,
            backend=backend,
        )

    return runner, minimal


def mlp_rows(args, device, height, width, classes):
    """PyTorch vs fused Triton per-patch MLP: time and bandwidth against the minimal bytes."""
    head = NRDHead(in_channels=512, low_level_channels=256, num_classes=classes).to(device).eval()
    x, low = _features(height, width, device, channels_last=False)
    runner, minimal = mlp_runner(head, x, low)
    copy_rate = copy_bandwidth(device)
    with torch.no_grad():
        timings = harness.time_interleaved(
            {b: runner(b) for b in ("torch", "triton")}, device=device, repeats=args.repeats or 20
        )
    rows = []
    for backend, timing in timings.items():
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
    cases = QUICK_CASES if args.quick else CASES
    for height, width, classes in cases:
        print(f"## Every zoo decoder, {height}x{width}, {classes} classes, to labels\n")
        headers = ["model", "head", "GMACs", "median ms", "min ms", "/ DeepLabV3+", "/ NRD"]
        rows = zoo_rows(args, device, height, width, classes)
        print(harness.markdown_table(headers, rows) + "\n")
    for height, width, classes in cases:
        print(f"## NRD in detail, {height}x{width}, {classes} classes\n")
        rows, times, peak_rate = decoder_rows(args, device, height, width, classes)
        headers = [
            "decoder",
            "median ms",
            "min ms",
            "GMACs",
            "GMAC/s",
            "of fp32 conv rate",
            "/ DeepLabV3+ (same format)",
        ]
        print(harness.markdown_table(headers, rows) + "\n")
        print(
            f"Conv rate: a dense 3x3 256->256 conv (channels_last), timed among the rows, "
            f"ran at {peak_rate:.0f} GMAC/s.\n"
        )
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
    print(harness.load_note())


if __name__ == "__main__":
    main()
