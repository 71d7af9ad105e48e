"""Patch cutting, sampling, one-hot layout and the exact PCA against a plain SVD."""

from __future__ import annotations

import pytest
import torch

from nrdseg.ops.label_patches import collect_patches, cut_patches, one_hot_patches, pca_basis


def test_cut_patches_row_major_and_drops_the_remainder():
    label = torch.arange(7 * 9).reshape(7, 9)
    patches = cut_patches(label, 3)
    assert patches.shape == (2 * 3, 3, 3)
    for index, (row, col) in enumerate((r, c) for r in range(2) for c in range(3)):
        assert patches[index].equal(label[3 * row : 3 * row + 3, 3 * col : 3 * col + 3])
    with pytest.raises(ValueError, match="2-D integer"):
        cut_patches(torch.zeros(4, 4), 2)


def test_collect_patches_samples_without_replacement_and_deterministically():
    labels = [torch.arange(64).reshape(8, 8) + 100 * i for i in range(5)]  # unique patches
    everything = collect_patches(labels, ratio=2)
    assert len(everything) == 5 * 16
    sample = collect_patches(labels, ratio=2, max_patches=30, seed=3)
    assert len(sample) == 30
    assert len({tuple(p.flatten().tolist()) for p in sample}) == 30
    assert sample.equal(collect_patches(iter(labels), ratio=2, max_patches=30, seed=3))
    assert not sample.equal(collect_patches(labels, ratio=2, max_patches=30, seed=4))
    images = {int(p[0, 0]) // 100 for p in sample}
    assert len(images) > 1  # drawn from all maps, not just the first ones


def test_collect_patches_complete_only():
    label = torch.zeros(4, 4, dtype=torch.long)
    label[0, 0] = 255
    assert len(collect_patches([label], ratio=2)) == 4
    complete = collect_patches([label], ratio=2, complete_only=True)
    assert len(complete) == 3 and not (complete == 255).any()
    with pytest.raises(ValueError, match="no complete"):
        collect_patches([torch.full((2, 2), 255)], ratio=2, complete_only=True)


def test_one_hot_layout_is_class_major_and_ignores_255():
    patches = torch.tensor([[[0, 2], [255, 1]]])
    vectors = one_hot_patches(patches, num_classes=3)
    assert vectors.shape == (1, 3 * 4)
    for c in range(3):
        for i in range(2):
            for j in range(2):
                expected = float(patches[0, i, j] == c)
                assert vectors[0, c * 4 + i * 2 + j] == expected
    with pytest.raises(ValueError, match="label value 3 is outside"):
        one_hot_patches(torch.tensor([[[3]]]), num_classes=3)


@pytest.mark.parametrize(("count", "dim"), [(40, 12), (9, 30)])  # covariance / Gram branch
def test_pca_matches_svd_of_the_centered_data(count, dim):
    x = torch.randn(count, 4) @ torch.randn(4, dim) + 0.05 * torch.randn(count, dim) + 2.0
    mean, basis = pca_basis(x, 3)
    centered = (x - x.mean(0)).double()
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    torch.testing.assert_close(mean, x.mean(0))
    torch.testing.assert_close(basis.double() @ basis.double().T, torch.eye(3, dtype=torch.float64))
    # Same subspace (signs are arbitrary): equal projectors.
    torch.testing.assert_close(
        basis.double().T @ basis.double(), vh[:3].T @ vh[:3], atol=1e-4, rtol=0
    )


def test_pca_beyond_the_rank_gives_zero_rows():
    x = torch.randn(5, 2) @ torch.randn(2, 8)  # rank 2 after centering at most
    _, basis = pca_basis(x, 4)
    assert basis.shape == (4, 8)
    assert basis[2:].abs().max() == 0
    assert torch.linalg.matrix_rank(basis[:2]) == 2
