"""``nrdseg demo``: NRD and the two decoders of the paper's Table 1, trained on the
synthetic scenes with one encoder and one budget, scored, costed and drawn.

Writes ``demo.md`` (the table), ``demo.json``, ``demo.png`` (Fig. 2b: image, ground
truth and each decoder's labels for the validation scenes with the most boundary pixels),
the shown scenes as ``images/*.png`` and one training work dir per decoder under
``runs/`` (``nrdseg.load_model`` / ``nrdseg predict`` / ``nrdseg export`` read them).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nrdseg.analysis.decoder_study import run_study, study_table
from nrdseg.analysis.experiments import (
    CAMVID,
    CAMVID_QUICK,
    SYNTHETIC,
    SYNTHETIC_QUICK,
    Budget,
    Run,
    describe,
    run_config,
    run_dir,
    with_root,
)
from nrdseg.analysis.figures import prediction_grid
from nrdseg.engine.build import build_val_dataset
from nrdseg.evaluation.metrics import boundary_mask
from nrdseg.models.load import load_model
from nrdseg.ops.labels import IGNORE_INDEX
from nrdseg.ops.resize import resize
from nrdseg.utils.atomic import atomic_write_bytes

#: Column titles of the figure, in Table 1's order.
TITLES = {"bilinear": "bilinear", "dlv3p": "DeepLabV3+ decoder", "nrd": "NRD"}


@dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """The budget of every decoder, and how much of the rest to do."""

    budget: Budget
    latency_size: tuple[int, int]
    latency_repeats: int
    figure_rows: int
    seed: int = 0


FULL = DemoSettings(budget=SYNTHETIC, latency_size=(512, 1024), latency_repeats=5, figure_rows=4)
#: A smoke run for tests: the same steps, a few iterations of a tiny encoder.
QUICK = DemoSettings(
    budget=SYNTHETIC_QUICK, latency_size=(64, 128), latency_repeats=1, figure_rows=2
)


def camvid_settings(root: str | Path, *, quick: bool = False) -> DemoSettings:
    """The demo on real CamVid frames under ``root``: the real-image study's budget
    (:data:`nrdseg.analysis.experiments.CAMVID`), or a few iterations with ``quick``."""
    if quick:
        budget = with_root(CAMVID_QUICK, root)
        return DemoSettings(budget=budget, latency_size=(64, 128), latency_repeats=1, figure_rows=2)
    budget = with_root(CAMVID, root)
    return DemoSettings(budget=budget, latency_size=(512, 1024), latency_repeats=5, figure_rows=4)


def fine_structure_indices(dataset: object, *, count: int, pool: int = 64) -> list[int]:
    """The ``count`` samples among the first ``pool`` with the most boundary pixels."""
    size = min(pool, len(dataset))
    ignore = getattr(dataset, "ignore_index", IGNORE_INDEX)
    scores = [
        int(boundary_mask(dataset.load(i)[1][None].long(), ignore_index=ignore).sum())
        for i in range(size)
    ]
    return sorted(range(size), key=lambda i: -scores[i])[:count]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def figure_rows(
    runs: Sequence[Run], settings: DemoSettings, out: Path
) -> tuple[list[dict[str, np.ndarray]], object]:
    """Image, ground truth and each run's labels for the chosen validation scenes; the
    scenes are also written to ``out/images`` for ``nrdseg predict``."""
    dataset = build_val_dataset(run_config(runs[0], settings.budget))
    models = {run.label: load_model(run_dir(out, run)) for run in runs}
    rows = []
    for index in fine_structure_indices(dataset, count=settings.figure_rows):
        image, label, _ = dataset.load(index)
        picture = image.permute(1, 2, 0).numpy()
        atomic_write_bytes(out / "images" / f"val_{index:04d}.png", _png(picture))
        row = {"image": picture, "ground truth": label.numpy()}
        normalized = dataset[index]["image"][None]
        for run in runs:
            # Scored as in evaluation: logits at the test-time size, resized to the label's.
            with torch.no_grad():
                logits = models[run.label].eval()(normalized)
            labels = resize(logits, label.shape).argmax(dim=1)[0]
            row[TITLES.get(run.label, run.label)] = labels.numpy()
        rows.append(row)
    return rows, dataset


def machine_line() -> str:
    """CPU, threads and load: what the times in the table depend on."""
    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads{load}"


def run_demo(
    out: str | Path,
    *,
    settings: DemoSettings = FULL,
    progress: bool = True,
    say: Callable[[str], None] = print,
    device: str | None = None,
) -> str:
    """Train, evaluate and cost the three decoders into ``out``; returns the markdown.

    ``device``: where the runs train (default: CUDA if available)."""
    out = Path(out)
    start = time.perf_counter()
    rows = run_study(
        list(TITLES),
        seeds=[settings.seed],
        budget=settings.budget,
        out=out,
        latency_size=settings.latency_size,
        latency_repeats=settings.latency_repeats,
        progress=progress,
        say=say,
        device=device,
    )
    runs = [Run(label=row.label, model=row.model, seed=settings.seed) for row in rows]
    grid, dataset = figure_rows(runs, settings, out)
    atomic_write_bytes(
        out / "demo.png", prediction_grid(grid, palette=dataset.palette, classes=dataset.classes)
    )
    budget = settings.budget
    wall = time.perf_counter() - start
    header = (
        f"{describe(budget)[0].upper()}{describe(budget)[1:]} per decoder, seed "
        f"{settings.seed}. Scores in %; trimap = mIoU "
        "within w px of a boundary. GMACs and parameters: the decoder at the paper's scale "
        "(1024 x 2048, 19 classes, ResNet-50 widths); ms: the decoder from encoder output to "
        f"labels at {settings.latency_size[0]} x {settings.latency_size[1]} (same widths), "
        f"median of {settings.latency_repeats}. Machine: {machine_line()}; "
        f"wall time {wall / 60:.1f} min."
    )
    table = study_table(rows, latency_size=settings.latency_size)
    markdown = f"{header}\n\n{table}\n"
    atomic_write_bytes(out / "demo.md", markdown.encode())
    report = {"rows": [row.as_dict() for row in rows], "wall_seconds": wall, "header": header}
    atomic_write_bytes(out / "demo.json", json.dumps(report, indent=1).encode())
    return markdown


def next_steps(out: str | Path, *, seed: int = 0) -> str:
    """The commands to try on the demo's NRD checkpoint."""
    nrd = run_dir(out, Run(label="nrd", model="nrd_r50", seed=seed))
    return "\n".join(
        [
            "Try the trained NRD model next:",
            f"  nrdseg predict {nrd} {Path(out) / 'images'} --out {Path(out) / 'pred'} --overlay",
            f"  nrdseg export {nrd} --format onnx --out {Path(out) / 'nrd.onnx'} --verify"
            "   # pip install 'nrdseg[onnx]'",
            f"  nrdseg eval {nrd / 'config.yaml'} --checkpoint {nrd} --tta",
            f"  python -c \"import nrdseg; print(nrdseg.load_model('{nrd}'))\"",
        ]
    )
