"""``nrdseg train``: train (or resume) the model a config file describes."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nrdseg.checkpoint.work_dir import BEST, CHECKPOINTS, METRICS_FILE
from nrdseg.cli.options import (
    add_device_argument,
    add_no_progress_argument,
    add_pixel_limit_argument,
    add_set_argument,
    parse_assignments,
)
from nrdseg.cli.status import EXIT_FAILED, EXIT_OK
from nrdseg.config.run import load_config
from nrdseg.config.schema import ConfigError
from nrdseg.engine.build import check_model_builds, default_work_dir, train_from_config
from nrdseg.engine.trainer import TrainingStopped


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a config file",
        description="Train from CONFIG (YAML, see configs/). Several GPUs: "
        "torchrun --nproc_per_node N -m nrdseg.cli train CONFIG",
    )
    parser.add_argument("config", help="YAML config file")
    add_set_argument(parser)
    parser.add_argument(
        "--work-dir", help="where checkpoints and logs go (default work_dirs/<config path>)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from WORK_DIR/checkpoints/latest"
    )
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="fine-tune: start from an nrdseg checkpoint or work dir of any class count "
        "(sets model.init_from)",
    )
    add_no_progress_argument(
        parser, help="no progress bar (log lines stay); a redirected output gets plain lines anyway"
    )
    add_device_argument(parser)
    add_pixel_limit_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = parse_assignments(args.set)
    if args.init_from:
        overrides["model.init_from"] = args.init_from
    config = load_config(args.config, overrides)
    try:  # train_from_config checks it too; here the message can name the file
        check_model_builds(config)
    except ConfigError as err:
        raise ConfigError(f"{args.config}: {err}") from None
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(args.config)
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process:
        print(
            f"work dir {work_dir}: checkpoints in {work_dir / CHECKPOINTS}, "
            f"log {work_dir / METRICS_FILE}, best model in {work_dir / BEST}"
        )
    try:
        train_from_config(
            config,
            work_dir,
            resume=args.resume,
            progress=not args.no_progress,
            console=True,
            device=args.device,
        )
    except TrainingStopped as err:
        print(f"nrdseg train: {err}", file=sys.stderr)
        return EXIT_FAILED
    if main_process:
        print(f"done: {work_dir}")
    return EXIT_OK
