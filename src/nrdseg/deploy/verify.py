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
    """The rows of :func:`verify_export` and what they must meet: each shape's largest
    logit difference within ``atol + rtol * max |logit|`` (float32's rounding grows with
    the logits' size, as in ``numpy.allclose``) and the labels of all shapes together
    agreeing on at least ``min_agreement`` of the pixels."""

    rows: list[ParityRow]
    atol: float
    min_agreement: float
    rtol: float = 0.0

    @property
    def agreement(self) -> float:
        """Argmax agreement over the pixels of all shapes together."""
        return sum(r.agreeing for r in self.rows) / sum(r.pixels for r in self.rows)

    def allowed(self, row: ParityRow) -> float:
        """The largest logit difference ``row`` may have."""
        return self.atol + self.rtol * row.max_abs_logit

    @property
    def logits_ok(self) -> bool:
        return all(r.max_abs_diff <= self.allowed(r) for r in self.rows)

    @property
    def ok(self) -> bool:
        return self.logits_ok and self.agreement >= self.min_agreement

    def table(self) -> str:
        """One line per shape, then PASS or FAIL naming each condition missed."""
        header = f"{'B x H x W':<16} {'max |logit|':>11} {'max |diff|':>11} {'allowed':>9}"
        lines = [f"{header} {'argmax agree':>13}"]
        for r in self.rows:
            shape = " x ".join(map(str, r.shape))
            agree = 100 * r.agreeing / r.pixels
            lines.append(
                f"{shape:<16} {r.max_abs_logit:11.3g} {r.max_abs_diff:11.2e} "
                f"{self.allowed(r):9.2e} {agree:12.3f}%"
            )
        need = (
            f"max |diff| <= {self.atol:g} + {self.rtol:g} x max |logit| and agreement >= "
            f"{100 * self.min_agreement:g}%"
        )
        missed = []
        if not self.logits_ok:
            worst = max(self.rows, key=lambda r: r.max_abs_diff / self.allowed(r))
            missed.append(
                f"max |diff| {worst.max_abs_diff:.2e} > {self.allowed(worst):.2e} at "
                + " x ".join(map(str, worst.shape))
            )
        if self.agreement < self.min_agreement:
            missed.append(f"agreement {100 * self.agreement:.3f}%")
        if missed:
            lines.append(f"FAIL: need {need}; got " + ", ".join(missed))
        else:
            lines.append(f"PASS: {need} (agreement {100 * self.agreement:.3f}%)")
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
    rtol: float = 1e-5,
    min_agreement: float = 0.9999,
    seed: int = 0,
) -> ParityReport:
    """Run the exported file and the model on the same random normalized images of
    ``shapes`` (B, H, W) and compare their logits and labels (see :class:`ParityReport`
    for what passes: ``atol`` in logit units, ``rtol`` of each shape's largest logit)."""
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
    return ParityReport(rows=rows, atol=atol, rtol=rtol, min_agreement=min_agreement)
