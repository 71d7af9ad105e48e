"""The label-patch study: metrics, the batched per-patch MLP fit, PCA codes and the CLI."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from nrdseg.analysis.patch_study import (
    StudyRow,
    fit_patch_mlps,
    patch_table,
    pca_reconstructions,
    plot_study,
    reconstruction_scores,
    run_patch_study,
)
from nrdseg.cli import main, study
from nrdseg.ops.label_patches import cut_patches
from tests.label_maps import random_label_maps


@pytest.fixture(autouse=True)
def _one_thread():
    """The fits are thousands of tiny kernels: a second thread only adds synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_scores_match_a_per_class_count():
    target = torch.randint(0, 4, (50, 6, 6))
    target[:5] = 255
    predicted = torch.where(torch.rand(50, 6, 6) < 0.7, target, torch.randint(0, 4, (50, 6, 6)))
    predicted[target == 255] = 0
    accuracy, miou = reconstruction_scores(predicted, target, num_classes=5)
    valid = target != 255
    assert accuracy == pytest.approx((predicted[valid] == target[valid]).float().mean().item())
    ious = []
    for c in range(5):  # class 4 never occurs: not averaged
        inter = ((predicted == c) & (target == c) & valid).sum().item()
        union = (((predicted == c) | (target == c)) & valid).sum().item()
        if union:
            ious.append(inter / union)
    assert len(ious) == 4
    assert miou == pytest.approx(sum(ious) / len(ious))


def test_batched_mlp_fit_represents_edges_and_ignores_255():
    ys, xs = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    patches = torch.stack(
        [(xs > 3).long(), (ys + xs > 6).long() * 2, torch.ones(8, 8, dtype=torch.long)]
    )
    patches[2, :, :4] = 255  # half-ignored patch: nothing to learn there
    predicted = fit_patch_mlps(patches, num_classes=3, hidden=4, steps=150)
    assert predicted.shape == patches.shape
    valid = patches != 255
    assert predicted[valid].equal(patches[valid])
    with pytest.raises(ValueError, match="at least 2 x 2"):
        fit_patch_mlps(patches, num_classes=3, hidden=2, steps=1, grid=1)


def test_pca_with_a_full_basis_is_exact_and_codes_are_nested():
    maps = random_label_maps(4, size=(32, 32), num_classes=3, seed=1)
    patches = torch.cat([cut_patches(m, 4) for m in maps])
    full = 3 * 16
    recons = pca_reconstructions(patches, patches, num_classes=3, components=[1, 4, full])
    assert recons[full].equal(patches)
    scores = [reconstruction_scores(recons[k], patches, num_classes=3)[0] for k in (1, 4, full)]
    assert scores[0] <= scores[1] <= scores[2] == 1.0


def test_pca_codes_ignore_the_ignored_pixels():
    """With every 2x2 binary patch in the fit, the valid pixels come back exactly."""
    bits = torch.arange(16)[:, None].bitwise_right_shift(torch.arange(4)).bitwise_and(1)
    fit = bits.reshape(16, 2, 2)
    probe = torch.randint(0, 2, (30, 2, 2))
    probe[torch.rand(30, 2, 2) < 0.3] = 255
    (recon,) = pca_reconstructions(probe, fit, num_classes=2, components=[8]).values()
    valid = probe != 255
    assert recon[valid].equal(probe[valid])


def _rows_by_method(rows: list[StudyRow]) -> dict[tuple[int, str], list[int]]:
    grouped: dict[tuple[int, str], list[int]] = {}
    for row in rows:
        grouped.setdefault((row.ratio, row.method), []).append(row.code_size)
        assert 0.0 <= row.miou <= 1.0 and 0.0 <= row.pixel_accuracy <= 1.0
    return grouped


def test_study_compares_equal_code_sizes():
    maps = random_label_maps(4, size=(64, 64), num_classes=3, seed=3)
    rows = run_patch_study(
        maps, num_classes=3, ratios=(8, 16), hidden=(2, 4), steps=20, max_patches=16
    )
    sizes = [2 * h + h + h * h + h + h * 3 + 3 for h in (2, 4)]  # NRD's g_theta, 2 inputs
    grouped = _rows_by_method(rows)
    assert grouped == {(r, m): sizes for r in (8, 16) for m in ("mlp", "pca")}
    table = patch_table(rows)
    assert "| 16x16 | 47 |" in table and table.count("\n") == 1 + 4
    with pytest.raises(ValueError, match="at least 2 label maps"):
        run_patch_study(maps[:1], num_classes=3)
    with pytest.raises(ValueError, match="no mixed 8x8 patch"):
        run_patch_study([torch.zeros(16, 16, dtype=torch.long)] * 2, num_classes=3, mixed_only=True)


def test_cli_quick_run_on_synthetic_labels_writes_table_json_and_png(tmp_path, capsys):
    torch.set_num_threads(2)
    assert main(["study", "patches", "--quick", "--out", str(tmp_path)]) == 0
    assert torch.get_num_threads() == 2  # --threads 1 applies to the study only
    out = capsys.readouterr().out
    assert "8 synthetic maps, 6 classes" in out and "| 32x32 | 150 |" in out
    records = json.loads((tmp_path / "patch_study.json").read_text())
    assert {(r["ratio"], r["method"], r["code_size"]) for r in records} == {
        (r, m, k) for r in (8, 32) for m in ("mlp", "pca") for k in (30, 150)
    }
    assert (tmp_path / "patch_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "patch_study.md").read_text().startswith("| patch |")


def test_missing_matplotlib_and_bad_datasets_fail_clearly(monkeypatch, capsys):
    assert main(["study", "patches", "--quick", "--no-plot", "--dataset", "cityscapes"]) == 2
    assert "unknown option(s)" in capsys.readouterr().err
    rows = [StudyRow(8, "mlp", 36, 0.9, 0.8), StudyRow(8, "pca", 36, 0.8, 0.7)]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"nrdseg\[plot\]"):
        plot_study(rows)
    monkeypatch.setattr(study, "is_installed", lambda name: False)
    monkeypatch.setattr(study, "dataset_labels", lambda *a: pytest.fail("ran without matplotlib"))
    assert main(["study", "patches", "--quick"]) == 2
    assert "--no-plot" in capsys.readouterr().err
