"""Tiny models with non-trivial weights and dataset metadata, for the predict/export/hub tests."""

from __future__ import annotations

import math

import torch

import nrdseg
from tests.conftest import tiny_options

PALETTE = [[200, 10, 10], [10, 200, 10], [10, 10, 200], [200, 200, 10], [10, 200, 200]]


def tiny_model(
    name: str = "nrd_r50", *, seed: int = 0, num_classes: int = len(PALETTE), **options
) -> nrdseg.Segmentor:
    """A 5-class tiny model with random weights whose labels vary from pixel to pixel
    (``num_classes=1``: a binary one, with 2 classes in its ``meta``); ``options`` go to
    ``create_model``.

    Conv weights are redrawn at scale 1/sqrt(fan-in), halved for NRD's controller output
    (its values are the weights of three stacked layers, so logits grow with their cube);
    other parameters get noise of scale 0.1. That keeps logits of order 1-25 like a
    trained model's whatever the init, so float32 tolerances mean what they say.
    """
    torch.manual_seed(seed)
    model = nrdseg.create_model(name, num_classes=num_classes, **tiny_options(name), **options)
    with torch.no_grad():
        for key, p in model.named_parameters():
            scale = 1 / math.sqrt(p[0].numel()) if p.ndim > 1 else 0.1
            if key.startswith("decoder.controller.1."):
                scale /= 2
            noise = scale * torch.randn_like(p)
            p.copy_(noise) if p.ndim > 1 else p.add_(noise)
    classes = model.label_classes
    model.meta = {"classes": [f"class{i}" for i in range(classes)], "palette": PALETTE[:classes]}
    return model.eval()
