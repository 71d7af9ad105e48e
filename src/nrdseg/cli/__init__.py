"""The ``nrdseg`` command line: one module per subcommand, each with ``add_parser``.

Only the module of the command that runs is imported (by name, from :data:`COMMANDS`):
``nrdseg models`` or ``nrdseg --help`` does not wait for what training, evaluation or
export import. The other commands appear in ``--help`` from their one-line help here.
Before that, OpenMP's wait policy is made passive (``nrdseg.utils.openmp``), so that a
CPU run on a busy machine does not spin on cores other processes hold.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from nrdseg.cli.status import EXIT_STATUS, EXIT_USAGE
from nrdseg.utils.openmp import prefer_passive_wait
from nrdseg.utils.version import __version__


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, the module under ``nrdseg.cli`` whose ``add_parser``
    registers it, and its one-line help (the same as that ``add_parser`` gives)."""

    name: str
    module: str
    help: str


COMMANDS = [
    Command(
        "demo", "demo", "train NRD and two baseline decoders on synthetic scenes (CPU, minutes)"
    ),
    Command("flops", "flops", "GMACs (the paper's GFlops) and params of a model"),
    Command("models", "models", "list the model zoo"),
    Command("data", "data", "datasets: list, prepare, check"),
    Command("train", "train", "train a model from a config file"),
    Command("eval", "evaluate", "evaluate a checkpoint on a config's validation set"),
    Command("study", "study", "analyses behind the paper's design"),
    Command("predict", "predict", "segment images into palette label PNGs"),
    Command("export", "export", "export a checkpoint to ONNX, TorchScript or a .pt2 program"),
]


def command_module(command: Command):
    """The module of ``command`` (imported now, the first time)."""
    return importlib.import_module(f"{__name__}.{command.module}")


def chosen_command(argv: Sequence[str]) -> Command | None:
    """The command ``argv`` names: its first word that is not an option (the top-level
    options take no value), or None."""
    words = [word for word in argv if not word.startswith("-")]
    return next((c for c in COMMANDS if words and c.name == words[0]), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full arguments of the command ``argv`` names (every command's
    with ``argv=None``) and only the name and help of the others."""
    parser = argparse.ArgumentParser(
        prog="nrdseg", description="Semantic segmentation with NRD decoders."
    )
    parser.add_argument("--version", action="version", version=f"nrdseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = chosen_command(argv) if argv is not None else None
    for command in COMMANDS:
        if argv is None or command == chosen:
            command_module(command).add_parser(subparsers)
        else:
            subparsers.add_parser(command.name, help=command.help)
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
    # Before any command imports torch, which loads the OpenMP runtime that reads it.
    prefer_passive_wait()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as err:
        print(f"nrdseg {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
