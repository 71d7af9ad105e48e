"""``nrdseg eval``: score a checkpoint on the validation set of a config."""

from __future__ import annotations

import argparse
import json
import sys

from nrdseg.checkpoint.resolve import checkpoint_directory
from nrdseg.checkpoint.work_dir import run_config_file
from nrdseg.cli.options import (
    add_device_argument,
    add_no_progress_argument,
    add_pixel_limit_argument,
    add_set_argument,
    add_speed_arguments,
    parse_assignments,
    speed_from_args,
)
from nrdseg.cli.status import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from nrdseg.config.run import load_config
from nrdseg.engine.build import build_val_dataset
from nrdseg.engine.distributed import process_group_from_env
from nrdseg.evaluation.evaluate import evaluate
from nrdseg.evaluation.report import metrics_table, result_summary
from nrdseg.models.load import load_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on a config's validation set",
        description="mIoU, mAcc, aAcc, per-class IoU and trimap mIoU of CHECKPOINT on the "
        "data.val set of CONFIG, with its eval settings.",
    )
    parser.add_argument(
        "config",
        nargs="?",
        help="YAML config file (data.val and eval are used); default: the config.yaml of "
        "the work dir given as --checkpoint",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint directory, a work dir (its best/, else its latest checkpoint) or "
        "hf://org/name",
    )
    parser.add_argument("--tta", action="store_true", help="flip + scales eval.tta_scales")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_no_progress_argument(parser)
    add_device_argument(parser)
    add_speed_arguments(parser)
    add_pixel_limit_argument(parser)
    add_set_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    speed = speed_from_args(args)  # a bad value is refused before the model loads
    overrides = parse_assignments(args.set)
    if args.tta:
        overrides["eval.tta"] = True
    source = args.config or run_config_file(args.checkpoint)
    if source is None:
        raise FileNotFoundError(
            f"give CONFIG: {args.checkpoint} is not a work dir with the config.yaml of its run"
        )
    config = load_config(source, overrides)
    checkpoint = checkpoint_directory(args.checkpoint)
    with process_group_from_env(args.device) as (info, device):
        model = load_model(checkpoint, device=device)
        # The checkpoint's own mean/std normalize the images, whatever the config says.
        dataset = build_val_dataset(config, source=str(source), model=model)
        if model.label_classes != dataset.num_classes:
            raise ValueError(
                f"{checkpoint} predicts {model.label_classes} classes but data.val of "
                f"{source} has {dataset.num_classes}; use the config it was trained with"
            )
        result = evaluate(
            model,
            dataset,
            device=device,
            progress=info.is_main and not (args.json or args.no_progress),
            speed=speed,
            **config.eval.inference_options(),
        )
        if not info.is_main:
            return EXIT_OK
    asked = (
        len(dataset)
        if config.eval.max_samples is None
        else min(len(dataset), config.eval.max_samples)
    )
    # result["skipped"] also lists the samples dropped when the dataset was built.
    unread = len(result["skipped"]) - len(getattr(dataset, "dropped", []))
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint), **result_summary(result)}))
    else:
        val = config.data.val
        # split null (the folder layout's "every image") names the root instead of "None".
        where = f"split {val.split}" if val.split is not None else f"root {val.root}"
        print(f"{checkpoint} on {val.name} {where}")
        print(metrics_table(result))
        if result["skipped"]:
            print(f"left out {len(result['skipped'])} unreadable sample(s) (on_error: skip):")
            print("\n".join(f"  {message}" for message in result["skipped"]))
    if unread >= asked:
        print(
            f"nrdseg eval: no sample scored: {asked} asked for, {unread} unreadable",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_PARTIAL if result["skipped"] else EXIT_OK
