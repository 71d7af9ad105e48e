"""Dataset-level segmentation metrics from confusion matrices, with DeepLab's trimap mIoU.

One int64 confusion matrix (rows: ground truth, columns: prediction) is accumulated over
the whole dataset, plus one per trimap width restricted to pixels near a ground-truth
boundary. Scores are computed from the summed matrices, so results do not depend on how
the data was split into batches or ranks.

Trimap band of width ``w``: a *boundary pixel* is a labelled (non-ignore) pixel with at
least one labelled pixel of another class among its 8 neighbours; transitions to ignore
pixels and the image border are not boundaries. The band holds every pixel whose
chessboard distance to a boundary pixel is at most ``w`` (the boundary dilated by a
``(2w + 1) x (2w + 1)`` square); the trimap mIoU of width ``w`` is the mIoU over the
labelled pixels of that band.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from nrdseg.ops.labels import IGNORE_INDEX

LabelArray = torch.Tensor | np.ndarray


def _as_labels(x: LabelArray, name: str) -> torch.Tensor:
    """An integer label map as an int64 (B, H, W) tensor on its own device."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of integer labels, "
            f"got {type(x).__name__}"
        )
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels, got dtype {x.dtype}")
    if x.ndim not in (2, 3):
        raise ValueError(f"{name} must be (H, W) or (B, H, W), got shape {tuple(x.shape)}")
    return (x if x.ndim == 3 else x[None]).long()


def _dilate_axis(mask: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """OR of a bool mask over the window [i - r, i + r] along ``dim``, clipped at the ends.

    On the mask padded with r zeros at both ends, the window starting at each position
    is grown by doubling (``out[i] |= out[i + step]``), so any width costs a few passes.
    """
    pad = list(mask.shape)
    pad[dim] = radius
    zeros = mask.new_zeros(pad)
    out = torch.cat([zeros, mask, zeros], dim)
    span, total = 1, 2 * radius + 1
    while span < total:
        step = min(span, total - span)
        length = out.shape[dim] - step
        out = out.narrow(dim, 0, length) | out.narrow(dim, step, length)
        span += step
    return out


def boundary_mask(target: torch.Tensor, *, ignore_index: int) -> torch.Tensor:
    """Pixels of ``target`` (B, H, W) with a labelled 8-neighbour of another class."""
    valid = target != ignore_index
    boundary = torch.zeros_like(valid)
    h, w = target.shape[-2:]
    # Each neighbour pair once (right, down, down-right, down-left); a differing labelled
    # pair marks both of its pixels.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        x0, x1 = (0, dx) if dx >= 0 else (-dx, 0)
        a = (..., slice(0, h - dy), slice(x0, x0 + w - abs(dx)))
        b = (..., slice(dy, h), slice(x1, x1 + w - abs(dx)))
        differ = valid[a] & valid[b] & (target[a] != target[b])
        boundary[a] |= differ
        boundary[b] |= differ
    return boundary


def band_levels(target: torch.Tensor, widths: Sequence[int], *, ignore_index: int) -> torch.Tensor:
    """Per pixel, for how many of ``widths`` the pixel lies outside the trimap band.

    Bands are nested, so a pixel lies in the band of the k-th smallest width exactly when
    its level is <= k; level ``len(widths)`` means farther from a boundary than any width.
    """
    mask = boundary_mask(target, ignore_index=ignore_index)
    levels = torch.zeros_like(target)
    done = 0
    # Square dilations compose (r1 then r2 = r1 + r2), so grow the band width by width.
    for width in sorted(widths):
        mask = _dilate_axis(_dilate_axis(mask, width - done, -1), width - done, -2)
        done = width
        levels += ~mask
    return levels


def scores_from_confusion(confusion: torch.Tensor) -> dict[str, Any]:
    """aAcc, mIoU, mAcc and per-class IoU / Acc (NaN where undefined) of one matrix, and
    per class the share of the labelled pixels it labels (``label_fraction``) and is
    predicted on (``pred_fraction``): a class that is never predicted shows as 0 there,
    whatever its IoU's other term."""
    conf = confusion.double()
    tp = conf.diagonal()
    gt = conf.sum(dim=1)
    union = gt + conf.sum(dim=0) - tp
    nan = torch.full_like(tp, float("nan"))
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp_min(1), nan)
    total = conf.sum()
    return {
        "aAcc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mIoU": float(iou.nanmean()),
        "mAcc": float(acc.nanmean()),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
        "label_fraction": (gt / total.clamp_min(1)).tolist(),
        "pred_fraction": (conf.sum(dim=0) / total.clamp_min(1)).tolist(),
    }


class SegMetric:
    """Accumulates confusion matrices over a dataset; usable on its own or in ``evaluate``.

    ``update(pred, target)`` takes integer label maps, (H, W) or (B, H, W), as torch
    tensors (any device) or numpy arrays. ``compute()`` returns fractions in [0, 1]:
    ``aAcc``; ``mIoU`` (mean over classes whose union > 0); ``mAcc`` (mean over classes
    present in the ground truth); ``IoU`` and ``Acc`` per class (NaN where undefined);
    ``trimap`` {width: mIoU within ``width`` px of a ground-truth boundary}.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int = IGNORE_INDEX,
        trimap_widths: Sequence[int] = (3, 5, 10, 20),
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        widths = tuple(trimap_widths)
        if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"trimap_widths must be positive ints, got {widths!r}")
        if len(set(widths)) != len(widths):
            raise ValueError(f"trimap_widths must not repeat a width, got {widths!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index {ignore_index} is one of the class ids 0..{num_classes - 1}: "
                "that class would never be scored"
            )
        self.num_classes = num_classes
        self.ignore_index = int(ignore_index)
        self.trimap_widths = widths
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        c = self.num_classes
        self._matrices = torch.zeros(1 + len(self.trimap_widths), c, c, dtype=torch.int64)

    @property
    def confusion(self) -> torch.Tensor:
        """The whole-image confusion matrix (rows: ground truth, columns: prediction)."""
        return self._matrices[0]

    @property
    def state(self) -> torch.Tensor:
        """All matrices stacked (1 + len(trimap_widths), C, C): whole image, then each width.

        Summing the states of several metrics (e.g. across ranks) and assigning the sum
        back gives the metric of all their data.
        """
        return self._matrices

    @state.setter
    def state(self, value: torch.Tensor) -> None:
        if not isinstance(value, torch.Tensor) or value.shape != self._matrices.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
            raise ValueError(
                f"state must be a tensor of shape {tuple(self._matrices.shape)}, got {shape}"
            )
        self._matrices = value.detach().to("cpu", torch.int64).clone()

    def update(self, pred: LabelArray, target: LabelArray) -> None:
        """Add one image or a batch: predicted labels and ground truth of the same shape."""
        pred = _as_labels(pred, "pred")
        target = _as_labels(target, "target").to(pred.device)
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
            )
        c = self.num_classes
        if pred.numel() and (pred.min() < 0 or pred.max() >= c):
            bad = pred[(pred < 0) | (pred >= c)][0].item()
            raise ValueError(f"pred holds label {bad}, expected labels in [0, {c})")
        valid = target != self.ignore_index
        out_of_range = valid & ((target < 0) | (target >= c))
        if out_of_range.any():
            bad = target[out_of_range][0].item()
            raise ValueError(
                f"target holds label {bad}, expected labels in [0, {c}) "
                f"or ignore_index {self.ignore_index}"
            )
        # One bincount for everything: bin (level, gt, pred), with one extra bin per level
        # for ignored pixels; summing levels 0..k gives the band of the k-th smallest width
        # and summing all levels the whole image.
        bins, n = c * c + 1, len(self.trimap_widths)
        code = torch.where(valid, target * c + pred, c * c)
        code += band_levels(target, self.trimap_widths, ignore_index=self.ignore_index) * bins
        counts = torch.bincount(code.flatten(), minlength=(n + 1) * bins)
        cumulative = counts.reshape(n + 1, bins)[:, : c * c].cumsum(dim=0)
        ascending = sorted(self.trimap_widths)
        rows = [n] + [ascending.index(w) for w in self.trimap_widths]
        self._matrices += cumulative[rows].reshape(-1, c, c).cpu()

    def merge(self, other: SegMetric) -> SegMetric:
        """Add the counts of ``other`` (same classes, ignore index and widths) to this one."""
        if not isinstance(other, SegMetric):
            raise TypeError(f"can only merge a SegMetric, got {type(other).__name__}")
        mine = (self.num_classes, self.ignore_index, self.trimap_widths)
        theirs = (other.num_classes, other.ignore_index, other.trimap_widths)
        if mine != theirs:
            raise ValueError(
                "cannot merge metrics with different (num_classes, ignore_index, "
                f"trimap_widths): {mine} and {theirs}"
            )
        self._matrices += other._matrices
        return self

    def all_reduce(self) -> None:
        """Sum the matrices over all ranks when torch.distributed is initialized."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        matrices = self._matrices.to(device)
        dist.all_reduce(matrices, op=dist.ReduceOp.SUM)
        self._matrices = matrices.cpu()

    def compute(self) -> dict[str, Any]:
        """Scores of everything accumulated: see the class docstring."""
        result = scores_from_confusion(self._matrices[0])
        result["trimap"] = {
            w: scores_from_confusion(m)["mIoU"]
            for w, m in zip(self.trimap_widths, self._matrices[1:], strict=True)
        }
        return result
