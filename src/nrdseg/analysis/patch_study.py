"""How well do r x r label patches fit in a code of K numbers: a tiny MLP vs PCA.

The paper's motivation (Fig. 1, section 1): label patches are highly redundant, PCA
(DUpsampling) exploits it linearly, a per-patch neural network g_theta(x, y) exploits it
better. Here both see the same patches with the same number K of per-patch numbers:

- ``mlp``: one NRD-shaped g_theta per patch, coordinates (x, y) -> hidden -> hidden ->
  classes, K = its parameter count. All patches are fitted at once, as one batched Adam
  optimisation of per-patch cross-entropy (the patches do not interact). It reads the
  coordinates of every pixel of the patch, or, with ``grid`` = 8, NRD's own setting: an
  8 x 8 coordinate map whose logits are resized bilinearly to r x r.
- ``pca``: the top-K principal directions of one-hot patches, fitted on other label maps
  as DUpsampling fits W on training labels; the patch's K coefficients are its
  projection, its labels the argmax over classes of the reconstruction.

Each patch gets its best code (the MLP's by optimisation, PCA's by projection), so the
scores measure what a code of size K can represent, not what an encoder can predict.
The MLP needs no training data: its prior is the architecture; PCA's prior is learned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nrdseg.analysis.figures import png_bytes, pyplot
from nrdseg.evaluation.metrics import SegMetric
from nrdseg.ops.dynamic_mlp import mlp_param_count, patch_coordinates, per_patch_mlp
from nrdseg.ops.label_patches import collect_patches, one_hot_patches, pca_basis
from nrdseg.ops.labels import IGNORE_INDEX
from nrdseg.ops.resize import resize
from nrdseg.utils.atomic import atomic_write_bytes


@dataclass(frozen=True)
class StudyRow:
    """One point of the study: a method at one patch size and code size."""

    ratio: int
    method: str
    code_size: int
    pixel_accuracy: float
    miou: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def reconstruction_scores(
    predicted: torch.Tensor,
    target: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[float, float]:
    """Pixel accuracy and mIoU (over classes present in either) of non-ignored pixels."""
    metric = SegMetric(num_classes, ignore_index=ignore_index, trimap_widths=())
    metric.update(predicted, target)
    scores = metric.compute()
    return scores["aAcc"], scores["mIoU"]


def fit_patch_mlps(
    patches: torch.Tensor,
    *,
    num_classes: int,
    hidden: int,
    steps: int,
    lr: float = 0.05,
    grid: int | None = None,
    ignore_index: int = IGNORE_INDEX,
    seed: int = 0,
) -> torch.Tensor:
    """Fit one g_theta per (r x r) patch of ``patches`` (P, r, r); return its (P, r, r) labels."""
    count, ratio = patches.shape[0], patches.shape[-1]
    size = ratio if grid is None else min(grid, ratio)
    if size < 2:
        raise ValueError(f"the MLP needs a coordinate grid of at least 2 x 2, got {size}")
    coords = patch_coordinates(size)
    # Standardized per channel, as NRD's BatchNorm does to its coordinate inputs.
    coords = (coords - coords.mean(dim=(1, 2), keepdim=True)) / coords.std(dim=(1, 2), keepdim=True)
    inputs = coords.expand(count, -1, -1, -1)
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for n_out, n_in in ((hidden, 2), (hidden, hidden), (num_classes, hidden)):
        bound = 1.0 / math.sqrt(n_in)
        chunks.append((torch.rand(count, n_out * n_in, generator=generator) * 2 - 1) * bound)
        chunks.append(torch.zeros(count, n_out))
    params = torch.cat(chunks, dim=1).requires_grad_()
    optimizer = torch.optim.Adam([params], lr=lr)

    def logits() -> torch.Tensor:
        out = per_patch_mlp(
            inputs, params[:, :, None, None], hidden_channels=hidden, num_classes=num_classes
        )
        return resize(out, (ratio, ratio))

    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits(), patches, ignore_index=ignore_index)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return logits().argmax(dim=1)


def pca_reconstructions(
    patches: torch.Tensor,
    fit: torch.Tensor,
    *,
    num_classes: int,
    components: Sequence[int],
    ignore_index: int = IGNORE_INDEX,
) -> dict[int, torch.Tensor]:
    """(P, r, r) labels reconstructed from K PCA coefficients, for every K in ``components``.

    The basis comes from the one-hot vectors of the ``fit`` patches, once for the largest K
    (the top-K directions of a PCA are nested). Ignored pixels are set to the mean patch
    before projecting, so they do not pull on the coefficients.
    """
    ratio = patches.shape[-1]
    fit_vectors = one_hot_patches(fit, num_classes=num_classes, ignore_index=ignore_index)
    mean, basis = pca_basis(fit_vectors, max(components))
    vectors = one_hot_patches(patches, num_classes=num_classes, ignore_index=ignore_index)
    ignored = (patches == ignore_index).flatten(1).repeat(1, num_classes)
    centered = (vectors - mean).masked_fill(ignored, 0.0)
    coefficients = centered @ basis.T
    results = {}
    for k in components:
        recon = mean + coefficients[:, :k] @ basis[:k]
        recon = recon.reshape(len(patches), num_classes, ratio, ratio)
        results[k] = recon.argmax(dim=1)
    return results


def run_patch_study(
    labels: Iterable[torch.Tensor],
    *,
    num_classes: int,
    ratios: Sequence[int] = (8, 32),
    hidden: Sequence[int] = (2, 4, 8, 16),
    steps: int = 500,
    lr: float = 0.05,
    grid: int | None = None,
    max_patches: int = 1024,
    fit_patches: int = 4096,
    mixed_only: bool = False,
    ignore_index: int = IGNORE_INDEX,
    seed: int = 0,
) -> list[StudyRow]:
    """MLP and PCA reconstruction scores for every ratio and every hidden width's code size.

    ``labels`` is any iterable of (H, W) integer label maps, read once. The PCA basis is
    fitted on up to ``fit_patches`` ignore-free patches of the first half of the maps, as
    DUpsampling fits W on training labels (fitted on the evaluated patches themselves, it
    would reproduce any set of at most K patches exactly). Both methods are scored on up to
    ``max_patches`` patches of the second half; ``mixed_only`` keeps only patches with two
    or more classes, where the codes have something to represent.
    """
    maps = list(labels)
    if len(maps) < 2:
        raise ValueError(f"the patch study needs at least 2 label maps, got {len(maps)}")
    fit_maps, eval_maps = maps[: len(maps) // 2], maps[len(maps) // 2 :]
    sizes = {
        width: mlp_param_count(in_channels=2, hidden_channels=width, num_classes=num_classes)
        for width in hidden
    }
    rows = []
    for ratio in ratios:
        patches = _evaluation_patches(
            eval_maps, ratio=ratio, mixed_only=mixed_only, ignore_index=ignore_index, seed=seed
        )[:max_patches]
        for width, code_size in sizes.items():
            predicted = fit_patch_mlps(
                patches,
                num_classes=num_classes,
                hidden=width,
                steps=steps,
                lr=lr,
                grid=grid,
                ignore_index=ignore_index,
                seed=seed,
            )
            rows.append(
                _row(ratio, "mlp", code_size, predicted, patches, num_classes, ignore_index)
            )
        fit = collect_patches(
            fit_maps,
            ratio=ratio,
            max_patches=fit_patches,
            complete_only=True,
            ignore_index=ignore_index,
            seed=seed,
        )
        recons = pca_reconstructions(
            patches,
            fit,
            num_classes=num_classes,
            components=list(sizes.values()),
            ignore_index=ignore_index,
        )
        for code_size, predicted in recons.items():
            rows.append(
                _row(ratio, "pca", code_size, predicted, patches, num_classes, ignore_index)
            )
    return rows


def _evaluation_patches(
    maps: list[torch.Tensor], *, ratio: int, mixed_only: bool, ignore_index: int, seed: int
) -> torch.Tensor:
    """All patches of ``maps`` with a labelled pixel (and two classes if ``mixed_only``)."""
    patches = collect_patches(maps, ratio=ratio, seed=seed)
    flat = patches.flatten(1)
    keep = (flat != ignore_index).any(dim=1)
    if mixed_only:
        first = flat.gather(1, (flat == ignore_index).long().argmin(dim=1, keepdim=True))
        keep &= ((flat != first) & (flat != ignore_index)).any(dim=1)
    if not keep.any():
        what = "mixed " if mixed_only else ""
        raise ValueError(f"no {what}{ratio}x{ratio} patch with labelled pixels to evaluate")
    return patches[keep]


def _row(
    ratio: int,
    method: str,
    code_size: int,
    predicted: torch.Tensor,
    patches: torch.Tensor,
    num_classes: int,
    ignore_index: int,
) -> StudyRow:
    accuracy, miou = reconstruction_scores(
        predicted, patches, num_classes=num_classes, ignore_index=ignore_index
    )
    return StudyRow(ratio, method, code_size, accuracy, miou)


def patch_table(rows: Sequence[StudyRow]) -> str:
    """Markdown table, one line per (ratio, code size), MLP and PCA side by side, in %."""
    by_key = {(r.ratio, r.code_size, r.method): r for r in rows}
    lines = [
        "| patch | code size | MLP acc | PCA acc | MLP mIoU | PCA mIoU |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for ratio, code_size in sorted({(r.ratio, r.code_size) for r in rows}):
        mlp, pca = by_key.get((ratio, code_size, "mlp")), by_key.get((ratio, code_size, "pca"))
        cells = [
            f"{100 * getattr(row, metric):.2f}" if row else "-"
            for metric in ("pixel_accuracy", "miou")
            for row in (mlp, pca)
        ]
        lines.append(f"| {ratio}x{ratio} | {code_size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_study(rows: Sequence[StudyRow]) -> bytes:
    """PNG bytes: mIoU and pixel accuracy vs code size, one panel per patch size."""
    plt = pyplot()
    ratios = sorted({r.ratio for r in rows})
    fig, axes = plt.subplots(1, len(ratios), figsize=(5 * len(ratios), 4), squeeze=False)
    for ax, ratio in zip(axes[0], ratios, strict=True):
        for method, colour in (("mlp", "tab:blue"), ("pca", "tab:orange")):
            points = sorted(
                (r.code_size, r.miou, r.pixel_accuracy)
                for r in rows
                if r.ratio == ratio and r.method == method
            )
            sizes = [p[0] for p in points]
            ax.plot(sizes, [100 * p[1] for p in points], "o-", color=colour, label=f"{method} mIoU")
            ax.plot(
                sizes,
                [100 * p[2] for p in points],
                "s--",
                color=colour,
                label=f"{method} pixel acc.",
            )
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.minorticks_off()
        ax.set_xlabel("code size (numbers per patch)")
        ax.set_ylabel("%")
        ax.set_title(f"{ratio}x{ratio} label patches")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return png_bytes(fig, dpi=120)


def write_report(rows: Sequence[StudyRow], directory: str | Path, *, plot: bool = True) -> Path:
    """``patch_study.md``, ``patch_study.json`` and (``plot``) ``patch_study.png``."""
    directory = Path(directory)
    atomic_write_bytes(directory / "patch_study.md", (patch_table(rows) + "\n").encode())
    records = [row.as_dict() for row in rows]
    atomic_write_bytes(directory / "patch_study.json", json.dumps(records, indent=2).encode())
    if plot:
        atomic_write_bytes(directory / "patch_study.png", plot_study(rows))
    return directory
