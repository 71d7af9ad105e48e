"""DUpsampling: the head's linear reconstruction, and a PCA basis fitted from label maps."""

from __future__ import annotations

import pytest
import torch

import nrdseg
from nrdseg.models.heads import DUpsamplingHead
from nrdseg.models.heads.dupsampling import DUpsamplingBasis, fit_dupsampling_basis
from nrdseg.ops.label_patches import collect_patches, one_hot_patches
from tests.conftest import tiny_options
from tests.label_maps import random_label_maps


def test_reconstruction_matches_a_per_cell_loop():
    head = DUpsamplingHead(in_channels=6, num_classes=3, channels=8, code_channels=5, ratio=4)
    with torch.no_grad():
        head.log_temperature.fill_(0.3)
    head.eval()
    x = torch.randn(2, 6, 3, 2)
    with torch.no_grad():
        out = head(x)
        code = head.predictor(head.conv(x))
    weight = head.reconstruct.weight[:, :, 0, 0]  # (C * r * r, K)
    bias = head.reconstruct.bias
    expected = torch.zeros(2, 3, 12, 8)
    for b in range(2):
        for y in range(3):
            for x_ in range(2):
                patch = (weight @ code[b, :, y, x_] + bias).detach()
                for c in range(3):
                    for i in range(4):
                        for j in range(4):
                            value = patch[c * 16 + i * 4 + j] / torch.exp(torch.tensor(0.3))
                            expected[b, c, y * 4 + i, x_ * 4 + j] = value
    torch.testing.assert_close(out, expected)


def test_pca_basis_reconstructs_unseen_patches_better_than_random():
    maps = random_label_maps(8, size=(64, 64), num_classes=4, seed=0, ignore_border=3)
    basis = fit_dupsampling_basis(maps[:6], ratio=8, num_classes=4, channels=12)
    assert basis.weight.shape == (12, 4 * 64) and basis.mean.shape == (4 * 64,)
    held_out = one_hot_patches(
        collect_patches(maps[6:], ratio=8, complete_only=True), num_classes=4
    )
    random_basis = torch.linalg.qr(torch.randn(4 * 64, 12))[0].T

    def error(weight: torch.Tensor) -> float:
        centered = held_out - basis.mean
        return ((centered - centered @ weight.T @ weight) ** 2).sum().item()

    assert error(basis.weight) < 0.5 * error(random_basis)


def test_loaded_basis_decodes_a_code_into_its_patch():
    """With W from the PCA, a cell whose code is a patch's projection paints that patch."""
    maps = random_label_maps(6, size=(32, 32), num_classes=3, seed=2)
    basis = fit_dupsampling_basis(maps, ratio=4, num_classes=3, channels=40)
    head = DUpsamplingHead(in_channels=2, num_classes=3, channels=4, code_channels=40, ratio=4)
    head.load_basis(basis)
    patches = collect_patches(maps, ratio=4)[:10]
    codes = (one_hot_patches(patches, num_classes=3) - basis.mean) @ basis.weight.T
    with torch.no_grad():
        painted = torch.pixel_shuffle(head.reconstruct(codes[:, :, None, None]), 4)
    assert (painted.argmax(dim=1) == patches).float().mean() > 0.99


def test_load_basis_checks_shapes_and_freezes_on_request():
    head = DUpsamplingHead(in_channels=4, num_classes=3, channels=4, code_channels=6, ratio=2)
    good = DUpsamplingBasis(weight=torch.randn(6, 12), mean=torch.rand(12), ratio=2, num_classes=3)
    head.load_basis(good, freeze=True)
    assert not head.reconstruct.weight.requires_grad and not head.reconstruct.bias.requires_grad
    torch.testing.assert_close(head.reconstruct.weight[:, :, 0, 0], good.weight.T)
    torch.testing.assert_close(head.reconstruct.bias, good.mean)
    head.load_basis(good)
    assert head.reconstruct.weight.requires_grad
    with pytest.raises(ValueError, match="ratio 4 and 3 classes"):
        head.load_basis(DUpsamplingBasis(torch.randn(6, 48), torch.rand(48), 4, 3))
    with pytest.raises(ValueError, match="expected \\(6, 12\\)"):
        head.load_basis(DUpsamplingBasis(torch.randn(5, 12), torch.rand(12), 2, 3))


def test_pca_initialised_model_trains():
    options = tiny_options("dupsample_r50")
    model = nrdseg.create_model("dupsample_r50", num_classes=3, code_channels=8, **options)
    maps = random_label_maps(4, size=(64, 64), num_classes=3, seed=1)
    model.decoder.load_basis(
        fit_dupsampling_basis(maps, ratio=32, num_classes=3, channels=8), freeze=True
    )
    losses = model.train().loss(torch.randn(2, 3, 64, 64), torch.stack(maps[:2]))
    losses["loss"].backward()
    assert model.decoder.reconstruct.weight.grad is None
    assert model.decoder.predictor.weight.grad.abs().sum() > 0
    assert model.decoder.log_temperature.grad is not None
