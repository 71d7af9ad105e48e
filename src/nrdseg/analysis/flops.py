"""GMACs (the paper's "GFlops") and parameters per part, counted on the meta device.

Multiply-accumulates of convolutions and matrix products count, as in the paper's
tables, and so does learned resampling: ``grid_sample`` (DySample, FreqFusion's offset
sampler) costs 4 MACs per output value when bilinear (16 bicubic), a term that mmcv-style
counters miss. CARAFE-style reassembly is a batched matrix product and counts as one.
Fixed resizes (``F.interpolate``) do not count, as in the paper (its bilinear decoder's
1.3 GMACs are the classifier alone). No real tensor is allocated, so 1024x2048 answers
in about a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from nrdseg.models.segmentor import Segmentor
from nrdseg.models.zoo import create_model
from nrdseg.utils.wrappers import unwrap_model

PARTS = ("backbone", "neck", "decoder")
#: Taps (multiply-accumulates per output value) of grid_sample's interpolation modes.
_GRID_SAMPLE_TAPS = {0: 4, 1: 0, 2: 16}  # bilinear, nearest, bicubic


def _grid_sample_flops(
    input_shape: Sequence[int], grid_shape: Sequence[int], mode: int, *args: Any, **kwargs: Any
) -> int:
    """FLOPs (2 per MAC, torch's convention) of ``aten.grid_sampler_2d``: every output value
    (N, C, H_grid, W_grid) is a weighted sum of its mode's taps."""
    batch, channels = input_shape[:2]
    return 2 * _GRID_SAMPLE_TAPS[mode] * batch * channels * grid_shape[1] * grid_shape[2]


#: Operators torch's counter does not know, and what nrdseg counts for them.
FLOP_FORMULAS = {torch.ops.aten.grid_sampler_2d: _grid_sample_flops}


@dataclass
class FlopReport:
    """GMACs of each part at one input size, and inference parameters in millions."""

    backbone: float
    neck: float
    decoder: float
    total: float
    params: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def count_flops(model: Segmentor, *, height: int, width: int) -> FlopReport:
    """Count one eval-mode forward of a (meta or real) model on a 1 x 3 x H x W input.

    A DDP / DataParallel / torch.compile wrapper is looked through: the parts are found
    by the model's own class and parameter names.
    """
    model = unwrap_model(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, depth=None, custom_mapping=FLOP_FORMULAS)
    try:
        with counter, torch.no_grad():
            model(torch.empty(1, 3, height, width, device=device))
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    root = type(model).__name__

    def gmacs(key: str) -> float:
        return sum(counts.get(key, {}).values()) / 2e9

    parts = {part: gmacs(f"{root}.{part}") for part in PARTS}
    params = sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith("aux_head.")
    )
    return FlopReport(**parts, total=gmacs("Global"), params=params / 1e6)


def model_flops(
    name: str, *, num_classes: int, height: int, width: int, **overrides: Any
) -> FlopReport:
    """Build a zoo model on the meta device (no weights, no memory) and count it."""
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, **{**overrides, "pretrained": False})
    return count_flops(model, height=height, width=width)
