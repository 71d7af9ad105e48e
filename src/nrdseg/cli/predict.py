"""``nrdseg predict``: label PNGs (and overlays) for image files, folders and globs."""

from __future__ import annotations

import argparse
import sys
import time

from nrdseg.cli.options import (
    add_device_argument,
    add_no_progress_argument,
    add_pixel_limit_argument,
    add_speed_arguments,
    speed_from_args,
)
from nrdseg.cli.status import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from nrdseg.deploy.colors import OVERLAY_ALPHA
from nrdseg.deploy.predict import FORMATS, LABELS_DIR, OVERLAYS_DIR, predict_files
from nrdseg.engine.distributed import pick_device
from nrdseg.evaluation.inference import MODES
from nrdseg.models.load import load_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment images into palette label PNGs",
        description="Write OUT/labels/<name>.png per input (palette PNG, pixel = class id) "
        "and, with --overlay, OUT/overlays/<name>.png. Names mirror the input folders.",
    )
    parser.add_argument("checkpoint", help="checkpoint dir, training work dir or hf://org/name")
    parser.add_argument("inputs", nargs="+", help="image files, folders (recursive) or globs")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--overlay",
        action="store_true",
        help="also write image + colour blends with a legend strip of the classes present",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=OVERLAY_ALPHA,
        help=f"weight of the colours in overlays, 0-1 (default {OVERLAY_ALPHA})",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="palette",
        help="label PNGs: class ids with the palette (default), or Cityscapes label ids "
        "(8-bit gray, labelIds) for the Cityscapes test server",
    )
    parser.add_argument("--tta", action="store_true", help="flip + scales 0.5-1.75 (slower)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="whole",
        help="whole: one forward pass per image (default); slide: windows of --crop-size "
        "every --stride pixels, logits averaged (as nrdseg eval), for very large images",
    )
    parser.add_argument(
        "--crop-size", type=int, nargs=2, metavar=("H", "W"), help="--mode slide: window size"
    )
    parser.add_argument(
        "--stride",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="--mode slide: step between windows, at most --crop-size",
    )
    add_pixel_limit_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    add_speed_arguments(parser)
    parser.add_argument(
        "--writers", type=int, default=4, help="threads encoding and writing PNGs (default 4)"
    )
    parser.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="an unreadable input is skipped and reported (default) or stops the run",
    )
    add_no_progress_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    speed = speed_from_args(args)  # a bad value is refused before the model loads
    device = pick_device(args.device)
    model = load_model(args.checkpoint, device=device)
    start = time.perf_counter()
    summary = predict_files(
        model,
        args.inputs,
        out_dir=args.out,
        overlay=args.overlay,
        alpha=args.alpha,
        tta=args.tta,
        mode=args.mode,
        crop_size=tuple(args.crop_size) if args.crop_size else None,
        stride=tuple(args.stride) if args.stride else None,
        batch_size=args.batch_size,
        on_error=args.on_error,
        progress=not args.no_progress,
        format=args.format,
        writers=args.writers,
        speed=speed,
    )
    where = f"{args.out}/{LABELS_DIR}" + (f" and {args.out}/{OVERLAYS_DIR}" if args.overlay else "")
    seconds = time.perf_counter() - start
    rate = len(summary.written) / seconds if seconds > 0 else float("inf")
    print(f"wrote {len(summary.written)} label PNGs to {where} ({rate:.1f} img/s)")
    if summary.left_out:
        print(summary.left_out.message("the inputs"))
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} unreadable input(s):")
        for _, reason in summary.skipped:
            print(f"  {reason}")
    if not summary.written:
        print(
            f"nrdseg predict: nothing written: all {len(summary.skipped)} input(s) failed",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_PARTIAL if summary.skipped else EXIT_OK
