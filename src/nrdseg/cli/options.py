"""Options shared by the subcommands, each declared once here: ``--set KEY=VALUE``
overrides, ``--device``, ``--no-progress``, the inference speed flags and the pixel limit
(the exit statuses are in ``nrdseg.cli.status``)."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from nrdseg.data.files import set_max_image_pixels
from nrdseg.evaluation.evaluate import InferenceSpeed
from nrdseg.evaluation.runtime import INFERENCE_AMP
from nrdseg.utils.yaml_read import load_yaml

#: ``--set`` help of the commands that read a run config.
SET_HELP = (
    "override a config key, e.g. optim.lr=0.02; a list item: loss.decode[0].type=dice; a "
    "whole list as YAML: 'loss.decode=[{type: dice}]'; null drops an option: "
    "model.options.controller_channels=null"
)

#: ``--device`` help of the commands that run a model on one device.
DEVICE_HELP = "cpu, cuda, cuda:1, ... (default: cuda if available)"

#: ``--no-progress`` help of the commands whose progress is their only running output.
NO_PROGRESS_HELP = "no progress bar or lines"


def add_set_argument(parser: argparse.ArgumentParser, *, help: str = SET_HELP) -> None:
    """``--set KEY=VALUE``, repeatable, into ``args.set`` (a list, or None without one);
    :func:`parse_assignments` reads it. ``help`` says what the keys are."""
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help=help)


def add_device_argument(parser: argparse.ArgumentParser, *, help: str = DEVICE_HELP) -> None:
    """``--device`` into ``args.device`` (None: CUDA when available), as
    ``nrdseg.engine.distributed.pick_device`` reads it."""
    parser.add_argument("--device", help=help)


def add_no_progress_argument(
    parser: argparse.ArgumentParser, *, help: str = NO_PROGRESS_HELP
) -> None:
    """``--no-progress`` into ``args.no_progress`` (True: no progress bar)."""
    parser.add_argument("--no-progress", action="store_true", help=help)


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
    """``--workers``, ``--amp`` and ``--compile`` of the inference commands (predict, eval);
    :func:`speed_from_args` reads them."""
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


def speed_from_args(args: argparse.Namespace) -> InferenceSpeed:
    """The :class:`~nrdseg.evaluation.evaluate.InferenceSpeed` that the flags of
    :func:`add_speed_arguments` ask for, channels-last on CUDA; ValueError for a value
    out of range (``--workers -1``), a usage error."""
    return InferenceSpeed(workers=args.workers, amp=args.amp, compile=args.compile)


class _PixelLimit(argparse.Action):
    """Applies ``--max-image-pixels`` as it is parsed (a bad count is a usage error)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        try:
            set_max_image_pixels(values)
        except ValueError as err:
            parser.error(str(err))
        setattr(namespace, self.dest, values)


def add_pixel_limit_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-image-pixels N``: Pillow's decompression-bomb limit, for commands reading
    images (set for the process and its DataLoader workers when the option is parsed)."""
    parser.add_argument(
        "--max-image-pixels",
        type=int,
        action=_PixelLimit,
        metavar="N",
        help="Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS, default about "
        "89 M pixels: warn above it, refuse above twice it); raise it for large images you "
        "trust, 0 = no limit. DataLoader workers get it too",
    )
