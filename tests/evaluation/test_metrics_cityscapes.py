"""SegMetric's class IoUs and mIoU equal the official Cityscapes evaluator's."""

from __future__ import annotations

import copy

import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cseval
import cityscapesscripts.helpers.labels as csl
import numpy as np
import pytest
from PIL import Image

from nrdseg.evaluation.metrics import SegMetric
from tests.evaluation.test_metrics import IGNORE, blocky_labels, noisy_prediction

TRAIN_TO_ID = {label.trainId: label.id for label in csl.labels if 0 <= label.trainId < 255}
IGNORED_IDS = [label.id for label in csl.labels if label.id >= 0 and label.ignoreInEval]
NAMES = [csl.trainId2label[t].name for t in range(19)]


def to_label_ids(train_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """trainIds -> official ids; ignore pixels get random ids the evaluator ignores."""
    ids = np.vectorize(lambda t: TRAIN_TO_ID.get(int(t), 0))(train_ids)
    ignored = train_ids == IGNORE
    ids[ignored] = rng.choice(IGNORED_IDS, size=int(ignored.sum()))
    return ids.astype(np.uint8)


def test_miou_equals_official_cityscapes_evaluator(tmp_path):
    rng = np.random.default_rng(0)
    metric = SegMetric(19, trimap_widths=())
    predictions, ground_truths = [], []
    for index in range(3):
        stem = f"frankfurt_000000_{index:06d}"
        # trainIds 17 and 18 never occur in the ground truth; 17 is sometimes predicted.
        target = blocky_labels(rng, (32, 48), 17, ignore_fraction=0.2, block=4)
        pred = noisy_prediction(rng, target, 17)
        pred[rng.random(pred.shape) < 0.03] = 17
        metric.update(pred, target)
        gt_file = tmp_path / "gtFine" / "val" / "frankfurt" / f"{stem}_gtFine_labelIds.png"
        pred_file = tmp_path / "results" / f"{stem}_pred_labelIds.png"
        for path, train_ids in ((gt_file, target), (pred_file, pred)):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(to_label_ids(train_ids, rng)).save(path)
        predictions.append(str(pred_file))
        ground_truths.append(str(gt_file))

    args = copy.copy(cseval.args)
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    args.exportFile = str(tmp_path / "result.json")
    official = cseval.evaluateImgLists(predictions, ground_truths, args)

    ours = metric.compute()
    official_ious = [official["classScores"][name] for name in NAMES]
    np.testing.assert_allclose(ours["IoU"], official_ious, atol=1e-6)
    assert np.isnan(ours["IoU"][18]) and ours["IoU"][17] == 0.0
    assert ours["mIoU"] == pytest.approx(official["averageScoreClasses"], abs=1e-6)
