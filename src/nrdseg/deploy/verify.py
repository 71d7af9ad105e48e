"""Check an exported file against the PyTorch model on random inputs of several shapes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nrdseg.deploy.export import EXPORTED_MIN_SIZE, Format, load_exported
from nrdseg.models.segmentor import Segmentor
from nrdseg.ops.labels import logits_to_labels


@dataclass(frozen=True)
class ParityRow:
    """One input shape: the largest logit difference and how many labels (argmax, or the
    binary threshold) agree."""

    shape: tuple[int, int, int]
    max_abs_logit: float  # the scale the difference is measured against
    max_abs_diff: float
    agreeing: int
    pixels: int


@dataclass(frozen=True)
class ParityReport:
    rows: list[ParityRow]
    atol: float
    min_agreement: float

    @property
    def agreement(self) -> float:
        """Argmax agreement over the pixels of all shapes together."""
        return sum(r.agreeing for r in self.rows) / sum(r.pixels for r in self.rows)

    @property
    def ok(self) -> bool:
        logits_ok = all(r.max_abs_diff <= self.atol for r in self.rows)
        return logits_ok and self.agreement >= self.min_agreement

    def table(self) -> str:
        lines = [f"{'B x H x W':<16} {'max |logit|':>11} {'max |diff|':>11} {'argmax agree':>13}"]
        for r in self.rows:
            shape = " x ".join(map(str, r.shape))
            agree = 100 * r.agreeing / r.pixels
            lines.append(
                f"{shape:<16} {r.max_abs_logit:11.3g} {r.max_abs_diff:11.2e} {agree:12.3f}%"
            )
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(
            f"{verdict}: need max |diff| <= {self.atol:g} and agreement >= "
            f"{100 * self.min_agreement:g}% (got {100 * self.agreement:.3f}%)"
        )
        return "\n".join(lines)


def _labels(logits: np.ndarray) -> np.ndarray:
    """Class ids of numpy logits: argmax, or logit > 0 for a binary model's one channel."""
    return logits_to_labels(torch.from_numpy(logits)).numpy()


def default_shapes(example_size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """The example size, a batch of 2 at odd sizes, and a size unlike the example's."""
    h, w = example_size
    return [
        (1, h, w),
        (2, max(EXPORTED_MIN_SIZE, h // 2 + 1), max(EXPORTED_MIN_SIZE, w // 2 + 7)),
        (1, max(EXPORTED_MIN_SIZE, h // 3 + 5), w + 21),
    ]


def verify_export(
    model: Segmentor,
    path: str | Path,
    *,
    format: Format,
    shapes: Sequence[tuple[int, int, int]],
    atol: float = 1e-4,
    min_agreement: float = 0.9999,
    seed: int = 0,
) -> ParityReport:
    """Run the exported file and the model on the same random normalized images."""
    run = load_exported(path, format=format)
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for batch, height, width in shapes:
        images = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model(images.to(device)).cpu().numpy()
        got = run(images.numpy())
        rows.append(
            ParityRow(
                shape=(batch, height, width),
                max_abs_logit=float(np.abs(expected).max()),
                max_abs_diff=float(np.abs(got - expected).max()),
                agreeing=int((_labels(got) == _labels(expected)).sum()),
                pixels=batch * height * width,
            )
        )
    return ParityReport(rows=rows, atol=atol, min_agreement=min_agreement)
