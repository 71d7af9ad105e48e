"""Dataset-level label statistics: pixels per class and ignored, and the mistakes they reveal.

A per-sample check cannot see that a 2-class set exported as 0/255 masks never shows
class 1 (255 is "ignore"), or that one class never occurs at all. Counting training ids
over the set (or an evenly spaced sample of it) can, and names the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nrdseg.data.base import SegDataset
from nrdseg.data.files import DataError
from nrdseg.ops.labels import BINARY_DATASET_FIX

#: Ignored share of all pixels above which training sees too little of the labels.
MOSTLY_IGNORED = 0.5

#: Class names that usually mean "no label" when they are trained as a class.
VOID_NAMES = frozenset(
    {"void", "unlabeled", "unlabelled", "ignore", "ignored", "unknown", "dontcare", "don't care"}
)


@dataclass(frozen=True)
class Finding:
    """One problem in the labels; ``error`` findings make training pointless as configured."""

    severity: Literal["error", "warning"]
    code: str
    message: str


@dataclass
class LabelStats:
    """Per-class pixel and image counts over ``samples`` of the ``total_samples`` of a set.

    ``pixels`` and ``images`` are int64 (num_classes,): labelled pixels of each class and
    the number of counted samples holding it. ``ignored`` counts ``ignore_index`` pixels.
    ``bad`` lists ``(index, message)`` of samples that could not be read.
    """

    classes: list[str]
    pixels: np.ndarray
    images: np.ndarray
    ignored: int
    samples: int
    total_samples: int
    ignore_index: int = 255
    bad: list[tuple[int, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sampled(self) -> bool:
        """True when only part of the set was counted."""
        return self.samples + len(self.bad) < self.total_samples

    @property
    def labelled(self) -> int:
        return int(self.pixels.sum())

    @property
    def frequencies(self) -> np.ndarray:
        """float64 (num_classes,): each class's share of the labelled pixels (0 if none)."""
        return self.pixels / max(self.labelled, 1)

    def scope(self) -> str:
        """ "all 4 samples" or "an evenly spaced sample of 200 of 5000 samples"."""
        read = self.samples + len(self.bad)
        if self.sampled:
            return f"an evenly spaced sample of {read} of {self.total_samples} samples"
        return f"all {self.total_samples} samples"

    def findings(self, *, label_map_keys: Sequence[str] = ("label_map",)) -> list[Finding]:
        """The problems these counts show, each message naming its fix.

        ``label_map_keys``: where the fixes' ``label_map`` is set on the command line that
        reads these labels (``label_map`` for ``nrdseg data check``; the config keys of every
        split, e.g. ``data.train.options.label_map``, for ``nrdseg train``).
        """
        if self.labelled + self.ignored == 0:
            return []
        if self.num_classes == 1:
            return [self._one_class()]
        where = self.scope() + ("" if not self.sampled else "; count all with `nrdseg data check`")
        if self.labelled == 0:
            return [self._all_ignored(where)]
        missing = [i for i in range(self.num_classes) if self.pixels[i] == 0]
        zero_255 = self._zero_255_masks(missing, label_map_keys)
        return [
            *zero_255,
            *([] if zero_255 else [self._never_occurs(i, where) for i in missing]),
            *self._mostly_ignored(where),
            *self._void_classes(),
            *self._scaled_values(),
        ]

    def _all_ignored(self, where: str) -> Finding:
        return Finding(
            "error",
            "all_ignored",
            f"every pixel in {where} is ignore ({self.ignore_index}): the loss has no "
            "labelled pixel to learn from and the metrics none to score. Fix: check "
            f"reduce_zero_label (it makes 0 ignore) and label_map (values mapped to "
            f"{self.ignore_index}); a 0/255 export of one class needs "
            f"label_map={{{self.ignore_index}: 1}} and 2 classes",
        )

    def _zero_255_masks(self, missing: list[int], label_map_keys: Sequence[str]) -> list[Finding]:
        """The usual 0/255 export of a 2-class set (it also covers class 1 never occurring).

        With more classes, 0 + ignore alone is left to the other warnings: a sample of a
        big set may hold background only, and an error stops training.
        """
        if not (
            self.num_classes == 2 and self.pixels[0] > 0 and self.ignored > 0 and missing == [1]
        ):
            return []
        cli = " ".join(f"--set '{key}={{{self.ignore_index}: 1}}'" for key in label_map_keys)
        message = (
            f"the masks hold only 0 and {self.ignore_index} for this "
            f"2-class set: {self.ignore_index} means 'ignore', so "
            f"{self._name(1)} is never learned (the usual 0/255 mask export). Fix: map "
            f"{self.ignore_index} to class 1 with the folder option "
            f"label_map={{{self.ignore_index}: 1}} (CLI: {cli}), or rewrite the masks as "
            "0/1 (mask // 255)"
        )
        return [Finding("error", "zero_255_masks", message)]

    def _never_occurs(self, index: int, where: str) -> Finding:
        return Finding(
            "warning",
            "class_never_occurs",
            f"{self._name(index)} never occurs in {where}: the model cannot learn it "
            "and its IoU shows as '-'. Fix: check which values the masks hold (the "
            "table), list the classes they use (classes.yaml or num_classes), or "
            "remap values with label_map",
        )

    def _mostly_ignored(self, where: str) -> list[Finding]:
        share = self.ignored / (self.labelled + self.ignored)
        if share <= MOSTLY_IGNORED:
            return []
        message = (
            f"ignore ({self.ignore_index}) covers {share:.0%} of the pixels "
            f"in {where}: only {1 - share:.0%} train the model. Fix: if "
            f"{self.ignore_index} marks real objects, map it to a class with label_map "
            "(e.g. label_map={255: 1}); check reduce_zero_label is not set by mistake"
        )
        return [Finding("warning", "mostly_ignored", message)]

    def _void_classes(self) -> list[Finding]:
        """Classes named like "void" or "unlabeled" that hold pixels, so are trained."""
        return [
            Finding(
                "warning",
                "void_class_trained",
                f"{self._name(index)} is trained as a class ({self.frequencies[index]:.1%}"
                " of the labelled pixels). Fix: if it marks unlabelled pixels, map it to "
                f"ignore with label_map={{{index}: {self.ignore_index}}} and drop it "
                "from the classes",
            )
            for index, name in enumerate(self.classes)
            if name.strip().lower() in VOID_NAMES and self.pixels[index] > 0
        ]

    def _scaled_values(self) -> list[Finding]:
        """Class ids that are all multiples of one step >= 2 (masks scaled to be visible)."""
        present = [i for i in range(1, self.num_classes) if self.pixels[i] > 0]
        step = math.gcd(*present) if len(present) >= 2 else 1
        if step < 2:
            return []
        shown = ", ".join(str(i) for i in ([0] if self.pixels[0] else []) + present[:6])
        message = (
            f"every class id in the masks is a multiple of {step} ({shown}), as in masks "
            f"scaled up to be visible: classes between them never occur. Fix: divide "
            f"the mask values by {step}, or give label_map"
        )
        return [Finding("warning", "scaled_values", message)]

    def _one_class(self) -> Finding:
        """A one-class set: nothing to tell apart, whatever the masks hold."""
        values = ["0"] * bool(self.pixels[0]) + [str(self.ignore_index)] * bool(self.ignored)
        held = " and ".join(values)
        export = " (the usual 0/255 mask export of one class)" if len(values) == 2 else ""
        return Finding(
            "error",
            "one_class",
            f"this set has 1 class ({self.classes[0]!r}) and its masks hold only {held}{export}: "
            f"with one class there is nothing to tell apart (every loss is 0, every score 1). "
            f"Fix, for binary segmentation: {BINARY_DATASET_FIX}",
        )

    def _name(self, index: int) -> str:
        return f"class {index} ({self.classes[index]!r})"

    def table(self) -> str:
        """A plain-text table: id, name, pixels, share of labelled pixels, images holding it."""
        width = max([len(name) for name in self.classes] + [9])
        lines = [
            f"label statistics over {self.scope()}"
            + (f" ({len(self.bad)} unreadable, not counted)" if self.bad else ""),
            f"{'id':>4}  {'class':<{width}}  {'pixels':>12}  {'labelled':>8}  {'images':>6}",
        ]
        for index, name in enumerate(self.classes):
            lines.append(
                f"{index:>4}  {name:<{width}}  {int(self.pixels[index]):>12}  "
                f"{self.frequencies[index]:>8.2%}  {int(self.images[index]):>6}"
            )
        total = self.labelled + self.ignored
        share = self.ignored / total if total else 0.0
        lines.append(
            f"{self.ignore_index:>4}  {'(ignored)':<{width}}  {self.ignored:>12}  "
            f"{share:>8.2%} of all pixels"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and findings; shares are fractions in [0, 1]."""
        total = self.labelled + self.ignored
        return {
            "samples": self.samples,
            "total_samples": self.total_samples,
            "sampled": self.sampled,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "classes": [
                {
                    "id": index,
                    "name": name,
                    "pixels": int(self.pixels[index]),
                    "fraction": float(self.frequencies[index]),
                    "images": int(self.images[index]),
                }
                for index, name in enumerate(self.classes)
            ],
            "ignored": self.ignored,
            "ignored_fraction": self.ignored / total if total else 0.0,
            "bad": [{"index": index, "error": message} for index, message in self.bad],
            "findings": [vars(finding) for finding in self.findings()],
        }


def sample_indices(size: int, max_samples: int | None) -> list[int]:
    """Every index, or ``max_samples`` evenly spaced ones (first and last included)."""
    if max_samples is None or max_samples <= 0 or size <= max_samples:
        return list(range(size))
    return sorted({round(i * (size - 1) / (max_samples - 1)) for i in range(max_samples)})


def label_statistics(
    dataset: SegDataset, *, max_samples: int | None = None, full: bool = False
) -> LabelStats:
    """Count training ids over ``dataset`` (``max_samples``: an evenly spaced subset).

    Reads labels with ``dataset.load_label`` (masks only for file datasets), or with
    ``full`` the whole raw sample (image decoded, sizes checked: ``nrdseg data check``);
    transforms and crops never change the counts. Unreadable samples are listed in ``bad``.
    """
    num_classes = dataset.num_classes
    ignore_index = dataset.ignore_index
    pixels = np.zeros(num_classes, dtype=np.int64)
    images = np.zeros(num_classes, dtype=np.int64)
    ignored, counted, bad = 0, 0, []
    for index in sample_indices(len(dataset), max_samples):
        try:
            label = np.asarray(dataset.load(index)[1] if full else dataset.load_label(index))
        except DataError as err:
            bad.append((index, str(err)))
            continue
        counts = np.bincount(label.ravel(), minlength=max(256, ignore_index + 1))
        pixels += counts[:num_classes]
        images += counts[:num_classes] > 0
        ignored += int(counts[ignore_index])
        counted += 1
    return LabelStats(
        classes=list(dataset.classes),
        pixels=pixels,
        images=images,
        ignored=ignored,
        samples=counted,
        total_samples=len(dataset),
        ignore_index=ignore_index,
        bad=bad,
    )


def class_pixel_counts(
    dataset: SegDataset, *, max_samples: int | None = None
) -> tuple[np.ndarray, int]:
    """Labelled pixels per class, int64 (num_classes,), and the ignored pixel count.

    The input for frequency-based class weights (e.g. median frequency balancing).
    """
    stats = label_statistics(dataset, max_samples=max_samples)
    return stats.pixels, stats.ignored
