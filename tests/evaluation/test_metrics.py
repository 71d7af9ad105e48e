"""SegMetric against slow per-pixel references: IoU / Acc, ignore, absent classes, trimap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nrdseg.evaluation.metrics import SegMetric

IGNORE = 255


def blocky_labels(rng: np.random.Generator, shape, num_classes, ignore_fraction=0.15, block=3):
    """Labels made of squares (so boundaries are sparse) with some ignore squares."""
    h, w = shape
    coarse_shape = (h // block + 1, w // block + 1)

    def upsample(coarse):
        return coarse.repeat(block, axis=0).repeat(block, axis=1)[:h, :w]

    labels = upsample(rng.integers(0, num_classes, size=coarse_shape))
    labels[upsample(rng.random(coarse_shape) < ignore_fraction)] = IGNORE
    return labels.astype(np.int64)


def noisy_prediction(rng, target, num_classes, flip=0.3):
    pred = np.where(target == IGNORE, rng.integers(0, num_classes, target.shape), target)
    noise = rng.random(target.shape) < flip
    return np.where(noise, rng.integers(0, num_classes, target.shape), pred)


def reference_scores(pairs, num_classes):
    """IoU / Acc per class by counting (pred, target) pixel pairs class by class."""
    ious, accs = [], []
    for c in range(num_classes):
        tp = sum(1 for p, t in pairs if t == c and p == c)
        in_gt = sum(1 for p, t in pairs if t == c)
        in_pred = sum(1 for p, t in pairs if p == c and t != IGNORE)
        union = in_gt + in_pred - tp
        ious.append(tp / union if union else math.nan)
        accs.append(tp / in_gt if in_gt else math.nan)
    valid = [(p, t) for p, t in pairs if t != IGNORE]
    return {
        "label_fraction": [sum(t == c for _, t in valid) / len(valid) for c in range(num_classes)],
        "pred_fraction": [sum(p == c for p, _ in valid) / len(valid) for c in range(num_classes)],
        "IoU": ious,
        "Acc": accs,
        "mIoU": float(np.nanmean(ious)),
        "mAcc": float(np.nanmean(accs)),
        "aAcc": sum(p == t for p, t in valid) / len(valid),
    }


def reference_band(target, width):
    """Pixels within chessboard distance ``width`` of a boundary pixel, by brute force."""
    h, w = target.shape
    neighbours = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
    boundary = []
    for i in range(h):
        for j in range(w):
            if target[i, j] == IGNORE:
                continue
            for di, dj in neighbours:
                y, x = i + di, j + dj
                if 0 <= y < h and 0 <= x < w and target[y, x] not in (IGNORE, target[i, j]):
                    boundary.append((i, j))
                    break
    band = np.zeros((h, w), dtype=bool)
    for i in range(h):
        for j in range(w):
            band[i, j] = any(max(abs(i - y), abs(j - x)) <= width for y, x in boundary)
    return band


def assert_scores_equal(ours, ref):
    for key in ("mIoU", "mAcc", "aAcc"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    np.testing.assert_allclose(ours["IoU"], ref["IoU"], atol=1e-12)
    np.testing.assert_allclose(ours["Acc"], ref["Acc"], atol=1e-12)
    for key in ("label_fraction", "pred_fraction"):
        np.testing.assert_allclose(ours[key], ref[key], atol=1e-12, err_msg=key)


def test_scores_match_per_class_reference_with_absent_classes():
    rng = np.random.default_rng(0)
    num_classes = 7
    metric = SegMetric(num_classes, trimap_widths=())
    pairs = []
    for _ in range(3):
        # Class 5 is never used; class 6 only ever predicted, never in the ground truth.
        target = blocky_labels(rng, (20, 23), 5)
        pred = noisy_prediction(rng, target, 5)
        pred[rng.random(pred.shape) < 0.05] = 6
        metric.update(torch.from_numpy(pred), torch.from_numpy(target))
        pairs += list(zip(pred.ravel().tolist(), target.ravel().tolist(), strict=True))
    ours = metric.compute()
    assert_scores_equal(ours, reference_scores(pairs, num_classes))
    assert math.isnan(ours["IoU"][5]) and math.isnan(ours["Acc"][5])
    assert ours["IoU"][6] == 0.0 and math.isnan(ours["Acc"][6])
    assert ours["label_fraction"][5] == ours["pred_fraction"][5] == 0.0
    assert ours["label_fraction"][6] == 0.0 < ours["pred_fraction"][6]
    assert ours["mIoU"] == pytest.approx(np.mean([*ours["IoU"][:5], 0.0]))
    assert ours["mAcc"] == pytest.approx(np.mean(ours["Acc"][:5]))
    assert ours["trimap"] == {}


def test_ignored_pixels_do_not_count_whatever_is_predicted_there():
    rng = np.random.default_rng(1)
    target = blocky_labels(rng, (16, 16), 4, ignore_fraction=0.4)
    pred = noisy_prediction(rng, target, 4)
    results = []
    for fill in (0, 3):
        changed = np.where(target == IGNORE, fill, pred)
        metric = SegMetric(4)
        metric.update(changed, target)
        results.append(metric.compute())
        assert int(metric.confusion.sum()) == int((target != IGNORE).sum())
    assert results[0] == results[1]


def test_batches_accumulate_like_one_update_and_numpy_equals_torch():
    rng = np.random.default_rng(2)
    targets = np.stack([blocky_labels(rng, (18, 21), 6) for _ in range(4)])
    preds = np.stack([noisy_prediction(rng, t, 6) for t in targets])
    whole = SegMetric(6, trimap_widths=(1, 3))
    whole.update(torch.from_numpy(preds), torch.from_numpy(targets))
    pieces = SegMetric(6, trimap_widths=(1, 3))
    pieces.update(preds[:1], targets[:1])
    pieces.update(preds[1].astype(np.uint8), targets[1].astype(np.uint8))
    pieces.update(torch.from_numpy(preds[2:]).int(), torch.from_numpy(targets[2:]))
    assert torch.equal(whole.state, pieces.state)
    assert whole.compute() == pieces.compute()


def test_trimap_matches_brute_force_band():
    rng = np.random.default_rng(3)
    widths = (1, 2, 4)
    metric = SegMetric(5, trimap_widths=widths)
    pairs = {w: [] for w in widths}
    for _ in range(2):
        target = blocky_labels(rng, (21, 26), 5, ignore_fraction=0.25, block=7)
        pred = noisy_prediction(rng, target, 5)
        metric.update(pred, target)
        for w in widths:
            band = reference_band(target, w)
            assert 0 < band.sum() < band.size  # the widths give distinct, non-trivial bands
            pairs[w] += list(zip(pred[band].tolist(), target[band].tolist(), strict=True))
    trimap = metric.compute()["trimap"]
    assert list(trimap) == list(widths)
    for w in widths:
        assert trimap[w] == pytest.approx(reference_scores(pairs[w], 5)["mIoU"], abs=1e-12)


def test_ignore_and_image_border_are_not_boundaries():
    target = np.full((9, 9), 1)
    target[:, :3] = IGNORE
    metric = SegMetric(3, trimap_widths=(2, 50))
    metric.update(np.zeros_like(target), target)
    assert metric.state[1:].sum() == 0  # no labelled transition: the bands are empty
    target[:, 7:] = 2
    metric.update(np.zeros_like(target), target)
    # Boundary columns 6 and 7, dilated by 2: columns 4..8 of the labelled part.
    assert metric.state[1].sum() == 9 * 5
    assert metric.state[2].sum() == 9 * 6  # a band wider than the image: all labelled


def test_tiny_images():
    for shape in ((1, 1), (1, 4), (3, 1)):
        target = np.arange(np.prod(shape)).reshape(shape) % 2
        metric = SegMetric(2, trimap_widths=(1, 7))
        metric.update(target, target)
        boundary = 0 if shape == (1, 1) else target.size
        assert metric.state.sum(dim=(1, 2)).tolist() == [target.size, boundary, boundary]


def test_merge_and_state_sum_two_metrics():
    rng = np.random.default_rng(4)
    data = [(noisy_prediction(rng, t, 3), t) for t in (blocky_labels(rng, (12, 12), 3),) * 2]
    both, first, second = (SegMetric(3, trimap_widths=(2,)) for _ in range(3))
    for pred, target in data:
        both.update(pred, target)
    first.update(*data[0])
    second.update(*data[1])
    restored = SegMetric(3, trimap_widths=(2,))
    restored.state = first.state + second.state
    assert torch.equal(first.merge(second).state, both.state)
    assert restored.compute() == both.compute()
    with pytest.raises(ValueError, match="trimap_widths"):
        first.merge(SegMetric(3, trimap_widths=(3,)))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3\)"):
        restored.state = torch.zeros(3, 3)


def test_empty_metric_reports_nan():
    result = SegMetric(2).compute()
    assert all(math.isnan(result[k]) for k in ("aAcc", "mIoU", "mAcc"))
    assert all(math.isnan(v) for v in result["trimap"].values())


@pytest.mark.parametrize(
    ("pred", "target", "error", "match"),
    [
        (np.zeros((4, 5), int), np.zeros((4, 6), int), ValueError, "differ in shape"),
        (np.full((4, 4), 3), np.zeros((4, 4), int), ValueError, r"label 3, expected .*\[0, 3\)"),
        (np.full((4, 4), -1), np.zeros((4, 4), int), ValueError, "label -1"),
        (np.zeros((4, 4), int), np.full((4, 4), 7), ValueError, "ignore_index 255"),
        (np.zeros((4, 4)), np.zeros((4, 4), int), TypeError, "integer labels"),
        (np.zeros(4, int), np.zeros(4, int), ValueError, r"\(H, W\) or \(B, H, W\)"),
        ([[0]], np.zeros((1, 1), int), TypeError, "got list"),
    ],
)
def test_bad_input_is_rejected_clearly(pred, target, error, match):
    with pytest.raises(error, match=match):
        SegMetric(3).update(pred, target)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        SegMetric(0)
    with pytest.raises(ValueError, match="positive ints"):
        SegMetric(3, trimap_widths=(0, 2))
    with pytest.raises(ValueError, match="repeat"):
        SegMetric(3, trimap_widths=(2, 2))
