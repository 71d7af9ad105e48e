"""The ``nrdseg`` command line: one module per subcommand, each with ``add_parser``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from nrdseg.cli import data, demo, evaluate, export, flops, models, predict, study, train
from nrdseg.cli.options import EXIT_STATUS, EXIT_USAGE
from nrdseg.data.files import set_max_image_pixels
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
    _add_exit_status(parser)
    return parser


def _add_exit_status(parser: argparse.ArgumentParser) -> None:
    """The exit statuses as the epilog of every command's help, sub-actions included."""
    parser.epilog = parser.epilog or EXIT_STATUS
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_exit_status(child)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "max_image_pixels", None) is not None:
            set_max_image_pixels(args.max_image_pixels)
        return int(args.func(args) or 0)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as err:
        print(f"nrdseg {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
