"""``nrdseg flops``: GMACs per part and parameters of a zoo model, without allocating it."""

from __future__ import annotations

import argparse
import json

from nrdseg.analysis.flops import model_flops
from nrdseg.cli.options import add_set_argument, parse_assignments
from nrdseg.config.signatures import check_model_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flops",
        help="GMACs (the paper's GFlops) and params of a model",
        description="Count multiply-accumulates per part on the meta device. "
        "The auxiliary head (training only) is excluded.",
    )
    parser.add_argument("model", help="zoo name, see `nrdseg models`")
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), default=(1024, 2048))
    add_set_argument(parser, help="model override")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    height, width = args.shape
    report = model_flops(
        args.model,
        num_classes=args.num_classes,
        height=height,
        width=width,
        **check_model_options(args.model, parse_assignments(args.set), prefix="--set "),
    )
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in report.as_dict().items()}))
        return 0
    print(f"{args.model}, {args.num_classes} classes, input {height}x{width}")
    for part in ("backbone", "neck", "decoder", "total"):
        print(f"  {part:<10} {getattr(report, part):10.2f} GMACs")
    print(f"  {'params':<10} {report.params:10.2f} M")
    return 0
