"""r x r patches of label maps, their one-hot vectors and an exact PCA of those vectors.

Shared by the DUpsampling basis fit and the patch-representation study. A patch vector is
laid out class-major, index ``c * r * r + i * r + j``: the channel order a pixel shuffle
turns into class c at pixel (i, j), so a basis row is directly a 1x1 conv's weights.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def cut_patches(label: torch.Tensor, ratio: int) -> torch.Tensor:
    """(H, W) integer labels -> (P, r, r) complete patches in row-major order.

    Rows and columns beyond the last multiple of r are dropped.
    """
    if label.ndim != 2 or label.is_floating_point():
        raise ValueError(
            f"label maps must be 2-D integer tensors (H, W), got {label.dtype} "
            f"of shape {tuple(label.shape)}"
        )
    rows, cols = label.shape[0] // ratio, label.shape[1] // ratio
    crop = label[: rows * ratio, : cols * ratio]
    patches = crop.reshape(rows, ratio, cols, ratio).permute(0, 2, 1, 3)
    return patches.reshape(rows * cols, ratio, ratio)


def collect_patches(
    labels: Iterable[torch.Tensor],
    *,
    ratio: int,
    max_patches: int | None = None,
    complete_only: bool = False,
    ignore_index: int = 255,
    seed: int = 0,
) -> torch.Tensor:
    """A uniform random sample (without replacement) of at most ``max_patches`` patches.

    Streams over ``labels`` keeping only the sample, so a whole training set fits in
    memory. ``complete_only`` drops patches with any ``ignore_index`` pixel.
    """
    generator = torch.Generator().manual_seed(seed)
    kept = torch.empty(0, ratio, ratio, dtype=torch.int64)
    keys = torch.empty(0)
    for label in labels:
        patches = cut_patches(torch.as_tensor(label), ratio).long()
        if complete_only:
            patches = patches[(patches != ignore_index).flatten(1).all(dim=1)]
        kept = torch.cat([kept, patches])
        keys = torch.cat([keys, torch.rand(len(patches), generator=generator)])
        if max_patches is not None and len(kept) > max_patches:
            keys, order = keys.topk(max_patches, largest=False)
            kept = kept[order]
    if len(kept) == 0:
        what = "complete (ignore-free) " if complete_only else ""
        raise ValueError(f"the label maps hold no {what}{ratio}x{ratio} patch")
    return kept[keys.argsort()]


def one_hot_patches(
    patches: torch.Tensor, *, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """(P, r, r) labels -> (P, C * r * r) float one-hot vectors; ignored pixels are all-zero."""
    valid = patches != ignore_index
    bad = patches[valid & ((patches < 0) | (patches >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"label value {int(bad[0])} is outside [0, {num_classes}) and is not the "
            f"ignore index {ignore_index}"
        )
    one_hot = torch.nn.functional.one_hot(torch.where(valid, patches, 0), num_classes)
    one_hot = one_hot * valid.unsqueeze(-1)
    return one_hot.permute(0, 3, 1, 2).reshape(len(patches), -1).float()


def pca_basis(vectors: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and the top ``components`` principal directions (K, D) of (P, D) vectors.

    Exact: eigen-decomposes the smaller of the P x P Gram and the D x D covariance matrix
    (a 32 x 32 x 19 patch has D = 19456). Rows are orthonormal; directions beyond the
    data's rank carry nothing and are returned as zero rows, so K is always
    ``components``.
    """
    count, dim = vectors.shape
    if components < 1:
        raise ValueError(f"components must be >= 1, got {components}")
    mean = vectors.mean(dim=0)
    centered = vectors - mean
    if count < dim:
        values, vecs = torch.linalg.eigh((centered @ centered.T).double())
    else:
        values, vecs = torch.linalg.eigh((centered.T @ centered).double())
    values, vecs = values.flip(0)[:components], vecs.flip(1)[:, :components]
    keep = values > values[0].clamp(min=1e-12) * 1e-5  # float32 Gram noise is ~1e-7
    values, vecs = values[keep], vecs[:, keep]
    vecs = vecs.to(vectors.dtype)
    if count < dim:
        vecs = (centered.T @ vecs) / values.sqrt().to(vectors.dtype)
    basis = torch.zeros(components, dim, dtype=vectors.dtype)
    basis[: vecs.shape[1]] = vecs.T
    return mean, basis
