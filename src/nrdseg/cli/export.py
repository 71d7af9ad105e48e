"""``nrdseg export``: ONNX, TorchScript or a torch.export program, optionally verified."""

from __future__ import annotations

import argparse
import logging

from nrdseg.cli.status import EXIT_FAILED, EXIT_OK
from nrdseg.deploy.export import FORMATS, export_model
from nrdseg.deploy.verify import default_shapes, verify_export
from nrdseg.models.load import load_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX, TorchScript or a .pt2 program",
        description="The exported model takes normalized float images (B, 3, H, W) of any "
        "size and returns logits (B, classes, H, W). Classes, palette, mean and std are "
        "stored in the file (ONNX metadata_props; nrdseg.json in .pt / .pt2 archives).",
    )
    parser.add_argument("checkpoint", help="checkpoint dir, training work dir or hf://org/name")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", required=True, help="output file (.onnx, .pt, .pt2)")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=(512, 512),
        help="example input size to trace with (default 512 512); other sizes still work",
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare with PyTorch on random inputs of several sizes; exit 1 on mismatch",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="--verify: logit difference allowed at any size (default 1e-4)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=1e-5,
        help="--verify: plus this share of the largest |logit| (default 1e-5: float32's "
        "rounding grows with the logits, about 1e-6 of them in exported graphs)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in ("atol", "rtol"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    for noisy in ("onnx_ir", "onnxscript"):  # one INFO line per graph pass otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    model = load_model(args.checkpoint)
    size = tuple(args.size)
    path = export_model(model, args.out, format=args.format, example_size=size, opset=args.opset)
    print(f"wrote {path} ({args.format}, {path.stat().st_size / 2**20:.1f} MiB)")
    if not args.verify:
        return 0
    shapes = default_shapes(size)
    report = verify_export(
        model, path, format=args.format, shapes=shapes, atol=args.atol, rtol=args.rtol
    )
    print(report.table())
    if not report.ok:
        print(f"{path} is kept, for a look; it does not match the model within these bounds")
    return EXIT_OK if report.ok else EXIT_FAILED
