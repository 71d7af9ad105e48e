"""``nrdseg models``: the zoo, one line per model, optionally with measured GMACs; or the
packaged configs (``--configs``)."""

from __future__ import annotations

import argparse

from nrdseg.analysis.flops import model_flops
from nrdseg.models.zoo import list_models, model_spec


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the model zoo")
    parser.add_argument(
        "--flops", action="store_true", help="add a markdown table of GMACs and params"
    )
    parser.add_argument(
        "--configs",
        action="store_true",
        help="list the packaged configs instead (nrdseg train NAME reads one from anywhere)",
    )
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), default=(1024, 2048))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.configs:
        # here, not at the top: listing the zoo imports nothing of the config layer
        from nrdseg.config.packaged import CONFIG_ROOT, config_names

        print(f"# packaged configs in {CONFIG_ROOT}: nrdseg train NAME [--set KEY=VALUE ...]")
        print("\n".join(config_names()))
        return 0
    names = list_models()
    if not args.flops:
        width = max(len(n) for n in names)
        for name in names:
            print(f"{name:<{width}}  {model_spec(name).description}")
        return 0
    height, width = args.shape
    print(f"GMACs at {height}x{width}, {args.num_classes} classes (`nrdseg flops`)\n")
    print("| model | decoder GMACs | total GMACs | params (M) | description |")
    print("|---|---:|---:|---:|---|")
    for name in names:
        r = model_flops(name, num_classes=args.num_classes, height=height, width=width)
        desc = model_spec(name).description
        print(f"| `{name}` | {r.decoder:.2f} | {r.total:.1f} | {r.params:.1f} | {desc} |")
    return 0
