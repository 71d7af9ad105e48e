"""``nrdseg data``: list datasets, convert downloads (``prepare``), find bad samples (``check``)."""

from __future__ import annotations

import argparse
import inspect

from nrdseg.cli.options import parse_assignments
from nrdseg.data import DataError, build_dataset, list_datasets
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
    prepare.add_argument("--no-progress", action="store_true", help="no progress bar")
    prepare.set_defaults(func=run_prepare)
    check = actions.add_parser(
        "check", help="read every sample and report the bad ones (exit status 1 if any)"
    )
    check.add_argument("dataset", choices=list_datasets())
    check.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="dataset option, e.g. root=PATH"
    )
    check.set_defaults(func=run_check)


def run_list(args: argparse.Namespace) -> int:
    for name in list_datasets():
        options = [
            key if p.default is inspect.Parameter.empty else f"{key}={p.default!r}"
            for key, p in dataset_options(name).items()
            if key != "transforms"
        ]
        print(f"{name:<18} {', '.join(options)}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    converted, skipped = PREPARERS[args.dataset](args.root, progress=not args.no_progress)
    print(f"{args.dataset}: converted {converted} file(s), kept {skipped} existing")
    return 0


def run_check(args: argparse.Namespace) -> int:
    dataset = build_dataset(args.dataset, **parse_assignments(args.set))
    # on_error=skip drops samples with missing files when the dataset is built: bad too.
    dropped = getattr(dataset, "dropped", [])
    for message in dropped:
        print(f"bad sample, left out: {message}")
    bad = len(dropped)
    for index in range(len(dataset)):
        try:
            dataset.load(index)
        except DataError as err:
            bad += 1
            print(f"bad sample {index}: {err}")
    print(
        f"{args.dataset}: {len(dataset) + len(dropped)} samples, {bad} bad, "
        f"{dataset.num_classes} classes"
    )
    return 1 if bad else 0
