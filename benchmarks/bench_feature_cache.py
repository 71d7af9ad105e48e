"""A frozen-encoder study's training step with and without the backbone cache.

The CamVid study (``nrdseg study decoders --data camvid``) freezes EfficientNet-Lite0, so
every decoder of a seed reads the same backbone maps of the same augmented batches:
:class:`nrdseg.analysis.feature_cache.FrozenBackboneCache` computes them once per batch
and serves the other decoders from memory (bit-identical). This times one AdamW step of
the study's models (its widths, batch 8 of 176 px crops, 11 classes) three ways, in one
run: no cache; a cold cache (a miss each step: the backbone forward plus hashing and
storing its maps); a warm cache (a hit each step: hashing and a copy of the maps).

    python benchmarks/bench_feature_cache.py [--quick] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch

import harness
import nrdseg
from nrdseg.analysis.experiments import CAMVID, Run, run_config
from nrdseg.analysis.feature_cache import FrozenBackboneCache

MODELS = ["bilinear_r50", "nrd_r50", "freqfusion_r50", "dlv3p_r50"]
CACHES = ["no cache", "cold cache", "warm cache"]


def make_step(name: str, cache: str, *, crop: int, device: torch.device):
    """One AdamW step of the study's ``name`` on a fixed batch, with the backbone served as
    ``cache`` says. Weights random (timing only): ``pretrained`` would read the Lite0 file."""
    config = run_config(Run(label=name, model=name), CAMVID)
    torch.manual_seed(0)
    model = nrdseg.create_model(name, num_classes=11, pretrained=False, **config.model.options)
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.optim.lr)
    batch = config.loader.batch_size
    images = torch.randn(batch, 3, crop, crop, device=device)
    labels = torch.randint(0, 11, (batch, crop, crop), device=device)
    store = FrozenBackboneCache()
    if cache != "no cache":
        store.attach(model.backbone)

    def step() -> None:
        if cache == "cold cache":
            store.clear()  # every lookup misses
        model.loss(images, labels)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_arguments(parser)
    args = parser.parse_args()
    device = harness.setup(args)
    study = CAMVID.base_config()
    crop = 96 if args.quick else study.data.transforms.crop_size[0]
    models = MODELS[:2] if args.quick else MODELS
    repeats = args.repeats or (2 if args.quick else 5)
    batch = study.loader.batch_size
    print(f"# Frozen-encoder training step, batch {batch} x {crop} px, 11 classes\n")
    print(harness.describe_machine(device) + "\n")
    rows = []
    for name in models:
        steps = {cache: make_step(name, cache, crop=crop, device=device) for cache in CACHES}
        timings = harness.time_interleaved(steps, device=device, repeats=repeats)
        ms = [timings[cache].median_ms for cache in CACHES]
        rows.append([name, *ms, f"{ms[2] / ms[0]:.2f}", f"{ms[1] / ms[0]:.2f}"])
    headers = ["model", *(f"{c} ms" for c in CACHES), "warm / none", "cold / none"]
    print(harness.markdown_table(headers, rows) + "\n")
    print(
        "A study of D decoders per seed pays one cold step and D - 1 warm ones per batch "
        "where it paid D uncached ones.\n"
    )
    print(harness.load_note())


if __name__ == "__main__":
    main()
