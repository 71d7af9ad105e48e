"""Options shared by the subcommands: ``KEY=VALUE`` overrides, inference speed flags, the
pixel limit, and the exit statuses every command uses."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from nrdseg.evaluation.runtime import INFERENCE_AMP
from nrdseg.utils.yaml_read import load_yaml

#: ``--set`` help of the commands that read a run config.
SET_HELP = (
    "override a config key, e.g. optim.lr=0.02; a list item: loss.decode[0].type=dice; a "
    "whole list as YAML: 'loss.decode=[{type: dice}]'; null drops an option: "
    "model.options.controller_channels=null"
)

#: Exit statuses: the same meaning for every command (argparse's own usage errors are 2).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

EXIT_STATUS = (
    "Exit status: 0 done, everything asked for was produced; 1 failed: nothing was "
    "produced or a requested step failed (predict: no input readable; eval: no sample "
    "readable; data check: a bad sample or an error finding; export --verify: a mismatch; "
    "train: training stopped); 2 stopped at a usage or input error (bad arguments, config, "
    "checkpoint or file; the message names it); 3 done in part: some inputs were skipped "
    "as unreadable and are named in the output (predict; eval with on_error: skip)."
)


def parse_assignments(pairs: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b.c=[1, 2]"]`` -> ``{"a": 1, "b.c": [1, 2]}``, values read as config
    files are (:func:`nrdseg.utils.yaml_read.load_yaml`)."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            result[key.strip()] = load_yaml(value, name=f"--set {key}")
        except yaml.YAMLError as err:
            raise ValueError(f"--set {pair}: the value is not valid YAML ({err})") from None
    return result


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--amp`` and ``--compile`` of the inference commands (predict, eval)."""
    parser.add_argument(
        "--workers", type=int, default=2, help="DataLoader processes decoding images (default 2)"
    )
    parser.add_argument(
        "--amp",
        choices=INFERENCE_AMP,
        default="none",
        help="bf16: bfloat16 autocast (faster on GPUs; labels may differ at near-ties)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (slow first batch, faster afterwards; falls back to "
        "eager with a warning where it cannot be used)",
    )


def add_pixel_limit_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-image-pixels N``: Pillow's decompression-bomb limit, for commands reading
    images (applied by ``nrdseg.cli.main`` before the command runs)."""
    parser.add_argument(
        "--max-image-pixels",
        type=int,
        metavar="N",
        help="Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS, default about "
        "89 M pixels: warn above it, refuse above twice it); raise it for large images you "
        "trust, 0 = no limit. DataLoader workers get it too",
    )
