"""A binary model (one logit) scored on its 2-class data: both classes' IoU, TTA on the sigmoid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nrdseg.evaluation.evaluate import evaluate
from nrdseg.evaluation.inference import infer_logits
from nrdseg.ops.resize import resize
from tests.tiny_checkpoints import tiny_model


class Masks:
    """2-class samples (background, building) whose first channel carries the mask."""

    classes = ("background", "building")
    palette = ((0, 0, 0), (250, 0, 0))
    num_classes = 2
    ignore_index = 255
    sizes = ((40, 56), (34, 46), (48, 32))

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> dict:
        h, w = self.sizes[index]
        gen = torch.Generator().manual_seed(index)
        coarse = torch.randint(0, 2, (h // 8 + 1, w // 8 + 1), generator=gen)
        label = coarse.repeat_interleave(8, 0).repeat_interleave(8, 1)[:h, :w].clone()
        label[: h // 6] = 255
        image = torch.randn(3, h, w, generator=gen)
        image[0] += 2.0 * (label == 1) - 1.0
        return {"image": image, "label": label, "path": f"mask_{index}.png"}


class FirstChannelLogit(torch.nn.Module):
    """One logit: the first channel plus a left-to-right ramp (not mirror-symmetric)."""

    num_classes = 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :1] + torch.linspace(-1.0, 1.0, images.shape[-1])


def confusion(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    valid = label != 255
    return np.bincount(2 * label[valid] + pred[valid], minlength=4).reshape(2, 2)


def mean_sigmoid_over_views(model, image, scales, flip) -> torch.Tensor:
    """TTA from its definition: the sigmoid of every view, brought back and averaged."""
    h, w = image.shape[-2:]
    total, views = 0.0, 0
    for scale in scales:
        scaled = resize(image, (int(h * scale + 0.5), int(w * scale + 0.5)))
        for mirrored in (False, True) if flip else (False,):
            view = scaled.flip(-1) if mirrored else scaled
            logit = model(view)
            logit = logit.flip(-1) if mirrored else logit
            total = total + torch.sigmoid(resize(logit, (h, w)))
            views += 1
    return total / views


@pytest.mark.parametrize("tta", [False, True])
def test_binary_scores_are_a_2x2_confusion_of_the_sigmoid_threshold(tta):
    model, dataset = FirstChannelLogit(), Masks()
    options = {"scales": (0.5, 1.0), "flip": True} if tta else {}
    result = evaluate(model, dataset, trimap_widths=(), progress=False, **options)
    matrix = np.zeros((2, 2), np.int64)
    for index in range(len(dataset)):
        sample = dataset[index]
        image = sample["image"][None]
        if tta:
            probability = mean_sigmoid_over_views(model, image, (0.5, 1.0), flip=True)
            torch.testing.assert_close(
                torch.sigmoid(infer_logits(model, image, **options)), probability
            )
        else:
            probability = torch.sigmoid(model(image))
        pred = (probability[0, 0] > 0.5).long().numpy()
        matrix += confusion(pred, sample["label"].numpy())
    iou = np.diag(matrix) / (matrix.sum(0) + matrix.sum(1) - np.diag(matrix))
    assert matrix.min() > 0  # both classes predicted right and wrong
    assert result["classes"] == ["background", "building"]
    assert result["IoU"] == pytest.approx(iou.tolist())
    assert result["mIoU"] == pytest.approx(iou.mean())


def test_a_binary_zoo_model_is_scored_on_both_classes():
    model = tiny_model("nrd_r50", num_classes=1)
    model.meta["classes"] = list(Masks.classes)
    result = evaluate(model, Masks(), trimap_widths=(3,), progress=False)
    assert len(result["IoU"]) == 2 and result["classes"] == ["background", "building"]
    assert not np.isnan(result["IoU"]).any()  # both classes occur in the ground truth


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (1, r"the model is binary .* has 1 class\(es\); give the dataset 2 classes"),
        (3, r"the model is binary .* has 3 class\(es\); evaluate on data"),
    ],
)
def test_a_binary_model_refuses_data_of_other_class_counts(count, message):
    class Other(Masks):
        classes = tuple(f"c{i}" for i in range(count))
        num_classes = count

    with pytest.raises(ValueError, match=message):
        evaluate(tiny_model("nrd_r50", num_classes=1), Other(), progress=False)


def test_binary_tta_on_a_real_model_keeps_one_channel():
    model = tiny_model("nrd_r50", num_classes=1)
    image = torch.randn(1, 3, 37, 45)
    logits = infer_logits(model, image, flip=True)
    with torch.no_grad():
        expected = mean_sigmoid_over_views(model.eval(), image, (1.0,), flip=True)
    assert logits.shape == (1, 1, 37, 45)
    torch.testing.assert_close(torch.sigmoid(logits), expected, rtol=1e-5, atol=1e-6)
    assert F.softmax(logits, dim=1).eq(1).all()  # why one-logit TTA must not use softmax
