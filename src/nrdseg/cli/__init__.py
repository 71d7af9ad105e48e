"""The ``nrdseg`` command line: one module per subcommand, each with ``add_parser``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from nrdseg.cli import data, demo, evaluate, export, flops, models, predict, study, train
from nrdseg.utils.version import __version__

#: Subcommand modules; each defines ``add_parser(subparsers)`` that sets ``func``.
COMMANDS = [demo, flops, models, data, train, evaluate, study, predict, export]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nrdseg", description="Semantic segmentation with NRD decoders."
    )
    parser.add_argument("--version", action="version", version=f"nrdseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as err:
        print(f"nrdseg {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
