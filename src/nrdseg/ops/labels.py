"""The label convention every part reads: class ids, the one ignore label, binary models.

Labels hold class ids ``0 .. C-1`` and :data:`IGNORE_INDEX` for pixels that neither train
nor count in the metrics. That value has one owner, this module: datasets map raw mask
values to it, crops pad with it, ``cat_max_ratio`` and the label statistics skip it, and
the loss and the metrics ignore it.

A model with one output channel (``num_classes=1``) is a binary model, the convention of
segmentation_models_pytorch (one sigmoid logit) and of mmseg 1.x (``out_channels=1``): its
labels are 0 (background) and 1 (the class), so it has :func:`label_classes` 2, and it
predicts 1 where ``sigmoid(logit) > 0.5``. mmseg's decode head defaults that threshold
to 0.3 (with a warning, ``BaseDecodeHead``, mmseg PR #2016); 0.5 here is ``logit > 0``,
which is exactly the argmax of the two-class logits ``(0, logit)``: whose softmax is
``(1 - sigmoid, sigmoid)``, so sliding windows, test-time augmentation and the softmax
cross-entropy of a binary model are those of a two-class model.
"""

from __future__ import annotations

import torch

#: The label of pixels that are not trained on and not scored.
IGNORE_INDEX = 255

#: The fix for one-class data: a binary task's data has 2 classes, its model 1 logit.
BINARY_DATASET_FIX = (
    "give the dataset 2 classes, background and yours (folder: num_classes: 2, or a "
    "classes.yaml with [background, NAME]), and map a 0/255 export with label_map={255: 1}; "
    "then model.num_classes: 1 trains one sigmoid logit (binary cross-entropy) and "
    "model.num_classes: null a two-class softmax"
)


def label_classes(num_classes: int) -> int:
    """The class ids a model with ``num_classes`` output channels predicts: 2 for one."""
    return 2 if num_classes == 1 else num_classes


def two_class_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) binary logits -> (B, 2, ...) ``(0, logit)``; other shapes unchanged.

    Softmax of the result is ``(1 - sigmoid(logit), sigmoid(logit))``, its argmax is
    ``logit > 0`` and its cross-entropy against labels 0/1 is the binary cross-entropy.
    """
    if logits.shape[1] != 1:
        return logits
    return torch.cat([torch.zeros_like(logits), logits], dim=1)


def logits_to_labels(logits: torch.Tensor) -> torch.Tensor:
    """int64 (B, ...) class ids of (B, C, ...) logits: argmax, or ``logit > 0`` for C = 1."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def check_ignore_index(ignore_index: int, *, num_classes: int, key: str = "ignore_index") -> None:
    """ValueError unless ``ignore_index`` lies outside the class ids of the model.

    An ignore label that is also a class id would leave that class never trained but still
    predicted and scored.
    """
    classes = label_classes(num_classes)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"{key}: expected an integer label, got {ignore_index!r}")
    if 0 <= ignore_index < classes:
        raise ValueError(
            f"{key}: {ignore_index} is one of the class ids 0..{classes - 1}: that class would "
            f"never be trained, yet still be predicted and scored. nrdseg ignores "
            f"{IGNORE_INDEX}: map the mask value to it instead (label_map={{"
            f"{ignore_index}: {IGNORE_INDEX}}}, or reduce_zero_label: true for 0)"
        )
