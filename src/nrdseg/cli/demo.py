"""``nrdseg demo``: NRD against the bilinear and DeepLabV3+ decoders on synthetic scenes."""

from __future__ import annotations

import argparse
from pathlib import Path

from nrdseg.analysis.demo import FULL, QUICK, camvid_settings, next_steps, run_demo
from nrdseg.cli.options import add_device_argument
from nrdseg.cli.study import add_data_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train NRD and two baseline decoders on synthetic scenes (CPU, minutes)",
        description="Train the bilinear, DeepLabV3+ and NRD decoders on the built-in "
        "synthetic scenes with one small encoder and budget, evaluate them, and write "
        "OUT/demo.md (table), OUT/demo.png (predictions) and OUT/runs/ (checkpoints). "
        "A decoder finished in an earlier run is not trained again.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default nrdseg_demo, nrdseg_demo_camvid with --data camvid; a "
        "_quick suffix with --quick, so that no two kinds of run meet)",
    )
    add_device_argument(parser)
    parser.add_argument(
        "--quick", action="store_true", help="a few iterations of a tiny model (a smoke test)"
    )
    add_data_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name = "nrdseg_demo_camvid" if args.data == "camvid" else "nrdseg_demo"
    args.out = args.out or Path(f"{name}_quick" if args.quick else name)
    if args.data == "camvid":
        if args.root is None:
            raise ValueError("--data camvid needs --root DIR")  # exit 2, as a usage error
        settings = camvid_settings(args.root, quick=args.quick)
    else:
        settings = QUICK if args.quick else FULL
    markdown = run_demo(args.out, settings=settings, device=args.device)
    print(f"\n{markdown}")
    print(f"wrote {args.out}/demo.md, demo.json, demo.png, images/ and checkpoints in runs/\n")
    print(next_steps(args.out))
    return 0
