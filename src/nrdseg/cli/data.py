"""``nrdseg data``: list datasets, convert downloads (``prepare``), check samples and labels."""

from __future__ import annotations

import argparse
import inspect
import json

from nrdseg.cli.options import (
    add_no_progress_argument,
    add_pixel_limit_argument,
    add_set_argument,
    parse_assignments,
)
from nrdseg.cli.status import EXIT_FAILED, EXIT_OK
from nrdseg.config.signatures import check_dataset_options
from nrdseg.data import build_dataset, list_datasets
from nrdseg.data.label_stats import label_statistics
from nrdseg.data.prepare import prepare_cityscapes
from nrdseg.data.registry import dataset_options

#: Datasets that need a conversion after download, and the function that does it.
PREPARERS = {"cityscapes": prepare_cityscapes}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="datasets: list, prepare, check", description="Dataset utilities."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dataset names and their options")
    listing.set_defaults(func=run_list)
    prepare = actions.add_parser(
        "prepare",
        help="convert a downloaded dataset into the layout nrdseg reads",
        description="cityscapes: write *_gtFine_labelTrainIds.png from *_gtFine_labelIds.png "
        "(official id -> trainId table); existing files are kept.",
    )
    prepare.add_argument("dataset", choices=sorted(PREPARERS))
    prepare.add_argument("root", help="dataset root (the folder holding gtFine/)")
    add_no_progress_argument(prepare, help="no progress bar")
    add_pixel_limit_argument(prepare)
    prepare.set_defaults(func=run_prepare)
    check = actions.add_parser(
        "check",
        help="read every sample, report the bad ones and the label statistics",
        description="Reads each sample (image and mask), counts pixels per class and "
        "ignored, and warns about label mistakes (0/255 masks, classes that never occur, "
        "mostly ignored pixels, ...) with their fix. Exit status 1 if a sample is bad or a "
        "finding is an error.",
    )
    check.add_argument("dataset", choices=list_datasets())
    add_set_argument(check, help="dataset option, e.g. root=PATH")
    check.add_argument(
        "--max-samples",
        type=int,
        default=0,
        metavar="N",
        help="read only N evenly spaced samples (default 0: all)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object instead")
    add_pixel_limit_argument(check)
    check.set_defaults(func=run_check)


def run_list(args: argparse.Namespace) -> int:
    for name in list_datasets():
        options = [
            key if p.default is inspect.Parameter.empty else f"{key}={p.default!r}"
            for key, p in dataset_options(name).items()
        ]
        print(f"{name:<18} {', '.join(options)}")
    print("transforms: from Python only (a callable); configs set data.transforms instead")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    converted, skipped = PREPARERS[args.dataset](args.root, progress=not args.no_progress)
    print(f"{args.dataset}: converted {converted} file(s), kept {skipped} existing")
    return 0


def run_check(args: argparse.Namespace) -> int:
    options = check_dataset_options(args.dataset, parse_assignments(args.set), prefix="--set ")
    dataset = build_dataset(args.dataset, **options)
    # on_error=skip drops samples with missing files when the dataset is built: bad too.
    dropped = getattr(dataset, "dropped", [])
    for message in dropped:
        print(f"bad sample, left out: {message}")
    stats = label_statistics(dataset, max_samples=args.max_samples, full=True)
    findings = stats.findings()
    bad = len(dropped) + len(stats.bad)
    failed = bool(bad) or any(f.severity == "error" for f in findings)
    if args.json:
        print(
            json.dumps({"dataset": args.dataset, **stats.to_dict(), "dropped": dropped}, indent=1)
        )
        return EXIT_FAILED if failed else EXIT_OK
    for index, message in stats.bad:
        print(f"bad sample {index}: {message}")
    print(stats.table())
    for finding in findings:
        print(f"{finding.severity}: {finding.message}")
    read = "" if not stats.sampled else f" ({stats.samples + len(stats.bad)} read)"
    print(
        f"{args.dataset}: {len(dataset) + len(dropped)} samples{read}, {bad} bad, "
        f"{dataset.num_classes} classes, {len(findings)} label finding(s)"
    )
    return EXIT_FAILED if failed else EXIT_OK
