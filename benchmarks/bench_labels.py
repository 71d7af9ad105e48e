"""Label-only inference (``predict_labels``) vs argmax over full-resolution float logits.

Peak memory (fresh process per case, see ``harness``) and time of the post-decoder step
alone (native stride-4 logits -> labels, 1024x2048, 19 classes) and of the whole call on
nrd_r50 (1024x2048 with 19 classes; 512x512 with 150 classes); ``--quick`` halves the
sides. Both paths give identical labels; this is checked.

    python benchmarks/bench_labels.py [--quick] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch

import harness
import nrdseg
from nrdseg.ops.resize import resize
from nrdseg.ops.upsample_argmax import upsample_argmax

#: case -> (what runs, which path, classes, full-size (H, W), --quick (H, W)).
CASES = {
    "post-decoder, float logits": ("step", "float", 19, (1024, 2048), (512, 1024)),
    "post-decoder, banded labels": ("step", "labels", 19, (1024, 2048), (512, 1024)),
    "nrd_r50, model(x).argmax(1)": ("model", "float", 19, (1024, 2048), (512, 1024)),
    "nrd_r50, model.predict_labels(x)": ("model", "labels", 19, (1024, 2048), (512, 1024)),
    "nrd_r50 150 cl., model(x).argmax(1)": ("model", "float", 150, (512, 512), (256, 256)),
    "nrd_r50 150 cl., model.predict_labels(x)": ("model", "labels", 150, (512, 512), (256, 256)),
}


def make_case(case: str, args, device: torch.device):
    scope, path, classes, full, quick = CASES[case]
    height, width = quick if args.quick else full
    torch.manual_seed(0)  # the same logits / weights for both paths
    if scope == "step":
        logits = torch.randn(1, classes, height // 4, width // 4, device=device)
        if path == "float":
            return lambda: resize(logits, (height, width)).argmax(dim=1)
        return lambda: upsample_argmax(logits, size=(height, width))
    model = nrdseg.create_model("nrd_r50", num_classes=classes).to(device).eval()
    images = torch.randn(1, 3, height, width, device=device)
    if path == "float":

        def run():
            with torch.no_grad():
                return model(images).argmax(dim=1)

        return run
    return lambda: model.predict_labels(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser)
    args = parser.parse_args()
    if args.worker:
        device = harness.setup(args)
        harness.report_peak(make_case(args.worker, args, device), device=device)
        return
    device = harness.setup(args)
    repeats = args.repeats or (2 if args.quick else 3)
    print("# Label-only inference vs argmax of full-resolution float logits\n")
    print(harness.describe_machine(device) + "\n")
    names = list(CASES)
    pairs = [names[i : i + 2] for i in range(0, len(names), 2)]  # (float path, label path)
    rows, ratios = [], []
    for pair in pairs:
        peaks = {
            case: harness.peak_in_subprocess(__file__, case, args) / harness.MIB for case in pair
        }
        runs = {case: make_case(case, args, device) for case in pair}
        float_case, label_case = pair
        if not torch.equal(runs[float_case]().long(), runs[label_case]().long()):
            raise AssertionError(f"{label_case!r} differs from {float_case!r}")
        timings = harness.time_interleaved(runs, device=device, repeats=repeats)
        for case in pair:
            *_, full, quick = CASES[case]
            size = "x".join(map(str, quick if args.quick else full))
            rows.append([case, size, peaks[case], timings[case].median_ms])
        ratios.append(
            f"- {label_case} / {float_case}: peak **{peaks[label_case] / peaks[float_case]:.3f}**, "
            f"time {timings[label_case].median_ms / timings[float_case].median_ms:.3f}"
        )
        del runs
    print(harness.markdown_table(["case", "input", "peak MiB", "median ms"], rows) + "\n")
    print("\n".join(ratios) + "\n")
    print(harness.load_note())


if __name__ == "__main__":
    main()
