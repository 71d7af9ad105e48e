"""What a decoder costs: GMACs and parameters at the paper's scale, CPU latency.

Accuracy on the synthetic scenes comes from small encoders, but a decoder's cost is a
property of the decoder at the widths it is used at. So GMACs and parameters are counted
as in the paper's tables (ResNet-50 widths: a 512-channel encoder output at stride 32 and
256-channel stride-4 features; 1024 x 2048 input, 19 classes; on the meta device), and
latency is timed on random features of those widths, from the encoder's output to
full-resolution labels, the work a decoder adds to a prediction.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from nrdseg.analysis.flops import count_flops
from nrdseg.models.shapes import ShapeSpec
from nrdseg.models.zoo import create_model
from nrdseg.ops.resize import resize

#: The paper's GMACs setting (Tables 1 and 3): Cityscapes images, 19 classes.
PAPER_SCALE = {"height": 1024, "width": 2048, "num_classes": 19}


@dataclass(frozen=True)
class DecoderCost:
    """Decoder GMACs and parameters (M) at the paper's scale, latency in ms."""

    gmacs: float
    params: float
    latency_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def paper_scale_decoder(model: str, **options: Any) -> tuple[float, float]:
    """Decoder GMACs and parameters (M) of zoo ``model`` at 1024 x 2048, 19 classes."""
    with torch.device("meta"):
        segmentor = create_model(
            model, num_classes=PAPER_SCALE["num_classes"], pretrained=False, **options
        )
    report = count_flops(segmentor, height=PAPER_SCALE["height"], width=PAPER_SCALE["width"])
    params = sum(p.numel() for p in segmentor.decoder.parameters()) / 1e6
    return report.decoder, params


def encoder_maps(
    shapes: Mapping[str, ShapeSpec], names: Sequence[str], *, height: int, width: int
) -> list[torch.Tensor]:
    """Random float32 (1, C, H / stride, W / stride) maps of an ``height`` x ``width``
    image for the encoder maps ``names`` (a head's ``in_features``), as ``shapes`` says."""
    return [
        torch.randn(1, shapes[n].channels, height // shapes[n].stride, width // shapes[n].stride)
        for n in names
    ]


def decoder_latencies(
    models: Sequence[str],
    *,
    height: int = 512,
    width: int = 1024,
    repeats: int = 5,
    num_classes: int = PAPER_SCALE["num_classes"],
) -> dict[str, float]:
    """Median ms per image of each zoo model's decoder, eval mode, on this machine's CPU.

    Input: random ResNet-50-width encoder maps (the ones each decoder reads) of an
    ``height`` x ``width`` image; output: labels at that size (decoder, bilinear resize,
    argmax). The decoders are timed in turns, one call each per round after a warm-up
    call, so that the load of other processes spreads over all of them alike.
    """
    decoders, inputs = {}, {}
    for model in dict.fromkeys(models):
        segmentor = create_model(model, num_classes=num_classes, pretrained=False, aux=False)
        decoders[model] = segmentor.decoder.eval()
        inputs[model] = encoder_maps(
            segmentor.feature_shapes, segmentor.decoder.in_features, height=height, width=width
        )
    times: dict[str, list[float]] = {model: [] for model in decoders}
    with torch.no_grad():
        for round_index in range(repeats + 1):
            for model, decoder in decoders.items():
                start = time.perf_counter()
                resize(decoder(*inputs[model]), (height, width)).argmax(dim=1)
                if round_index:  # round 0 warms up
                    times[model].append((time.perf_counter() - start) * 1e3)
    return {model: statistics.median(values) for model, values in times.items()}


def decoder_costs(
    models: Sequence[str], *, latency_size: Sequence[int] = (512, 1024), repeats: int = 5
) -> dict[str, DecoderCost]:
    """:class:`DecoderCost` of every zoo model in ``models`` (GMACs/params at the paper's
    scale, latency at ``latency_size``)."""
    latencies = decoder_latencies(
        models, height=latency_size[0], width=latency_size[1], repeats=repeats
    )
    costs = {}
    for model in dict.fromkeys(models):
        gmacs, params = paper_scale_decoder(model)
        costs[model] = DecoderCost(gmacs=gmacs, params=params, latency_ms=latencies[model])
    return costs
