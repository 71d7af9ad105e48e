"""``nrdseg study patches``: the label-patch representation study (MLP vs PCA codes)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch

from nrdseg.analysis.patch_study import format_table, run_patch_study, write_report
from nrdseg.data import build_dataset

#: Settings of a full run and of ``--quick`` (about 10 s on one CPU core); flags override.
PRESETS = {
    "full": {
        "images": 32,
        "size": (512, 1024),
        "steps": 1000,
        "max_patches": 512,
        "fit_patches": 4096,
        "hidden": (2, 4, 8, 16),
    },
    "quick": {
        "images": 8,
        "size": (256, 512),
        "steps": 200,
        "max_patches": 64,
        "fit_patches": 1024,
        "hidden": (2, 8),
    },
}


def dataset_labels(name: str, size: tuple[int, int], count: int) -> tuple[list[torch.Tensor], int]:
    """The ``label`` of the first ``count`` training items of dataset ``name`` at ``size``."""
    dataset = build_dataset(name, size=size, length=count, split="train")
    return [dataset[i]["label"] for i in range(min(count, len(dataset)))], dataset.num_classes


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("study", help="analyses behind the paper's design")
    studies = parser.add_subparsers(dest="study", required=True, metavar="STUDY")
    patches = studies.add_parser(
        "patches",
        help="how well MLP and PCA codes of equal size represent label patches",
        description="Fit one tiny coordinate MLP per r x r label patch and compare with PCA "
        "codes of the same size; writes patch_study.{md,json,png} to --out.",
    )
    patches.add_argument("--out", type=Path, default=Path("patch_study"))
    patches.add_argument("--quick", action="store_true", help="small run, about 10 s on a CPU")
    patches.add_argument(
        "--dataset", default="synthetic", help="a dataset taking size and length (synthetic)"
    )
    patches.add_argument("--images", type=int, help="label maps (half fit PCA)")
    patches.add_argument("--size", type=int, nargs=2, metavar=("H", "W"))
    patches.add_argument("--ratios", type=int, nargs="+", default=[8, 32])
    patches.add_argument("--hidden", type=int, nargs="+", help="MLP hidden widths to sweep")
    patches.add_argument("--steps", type=int, help="Adam steps of the MLP fit")
    patches.add_argument(
        "--grid", type=int, help="MLP coordinate grid, resized to r x r (NRD: 8; default r)"
    )
    patches.add_argument("--max-patches", type=int, help="patches scored per ratio")
    patches.add_argument("--fit-patches", type=int, help="patches the PCA is fitted on")
    patches.add_argument("--mixed-only", action="store_true", help="score only multi-class patches")
    patches.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    patches.add_argument("--seed", type=int, default=0)
    patches.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the fits are many small kernels, and on a busy "
        "CPU two threads were 6x slower than one)",
    )
    patches.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.no_plot and importlib.util.find_spec("matplotlib") is None:
        print(
            "nrdseg study: error: the plot needs matplotlib: pip install 'nrdseg[plot]' "
            "(or pass --no-plot)",
            file=sys.stderr,
        )
        return 2
    preset = PRESETS["quick" if args.quick else "full"]
    setting = {key: getattr(args, key) or value for key, value in preset.items()}
    labels, num_classes = dataset_labels(args.dataset, tuple(setting["size"]), setting["images"])
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rows = run_patch_study(
            labels,
            num_classes=num_classes,
            ratios=args.ratios,
            hidden=setting["hidden"],
            steps=setting["steps"],
            grid=args.grid,
            max_patches=setting["max_patches"],
            fit_patches=setting["fit_patches"],
            mixed_only=args.mixed_only,
            seed=args.seed,
        )
    finally:
        torch.set_num_threads(threads)
    print(
        f"label patches of {len(labels)} {args.dataset} maps, {num_classes} classes; "
        "pixel accuracy and mIoU (%) vs code size (numbers per patch)\n"
    )
    print(format_table(rows))
    write_report(rows, args.out, plot=not args.no_plot)
    print(f"\nwrote {args.out}/patch_study.md, .json" + ("" if args.no_plot else ", .png"))
    return 0
