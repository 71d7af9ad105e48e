"""Does a dataset fit a model? Each setting the two share has one owner; this checks the other.

The model owns its class count and normalisation (mean/std: predict and export read them
from the model), the data owns the ignore label (:data:`nrdseg.ops.labels.IGNORE_INDEX`)
and, for training, the class names the model's ``meta`` takes. A dataset that disagrees
would train or score something other than what the model predicts, without an error, so
training and evaluation refuse it at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from nrdseg.ops.labels import BINARY_DATASET_FIX, IGNORE_INDEX, label_classes
from nrdseg.utils.wrappers import unwrap_model


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 6) for v in values]


def check_dataset_fits(
    model: nn.Module,
    dataset: Any,
    *,
    where: str,
    fix: str,
    names: bool = False,
) -> None:
    """ValueError unless ``dataset`` holds the labels and inputs ``model`` expects.

    Checks, for what the dataset tells (``num_classes``, ``ignore_index``, ``normalization``,
    ``classes``): its class count against the class ids of the model's ``num_classes``
    outputs (2 for a binary model's one; ``fix`` says what to do), its ignore label against the model's, the (mean, std) its images were
    normalized with against the model's, and with ``names`` its class names against the
    model's ``meta["classes"]``. ``where`` names the dataset in messages ("the training set").
    """
    model = unwrap_model(model)
    outputs = getattr(model, "num_classes", None)
    classes = None if outputs is None else label_classes(outputs)
    count = getattr(dataset, "num_classes", classes)
    if outputs == 1 and count != classes:
        raise ValueError(
            f"the model is binary (num_classes: 1, one logit: labels 0 background and 1 "
            f"foreground) but {where} has {count} class(es); "
            + (BINARY_DATASET_FIX if count == 1 else f"{fix} for a {count}-class softmax model")
        )
    if classes is not None and count != classes:
        if count == 1:
            raise ValueError(
                f"{where} has 1 class: there is nothing to tell apart; {BINARY_DATASET_FIX}"
            )
        raise ValueError(f"the model predicts {classes} classes but {where} has {count}; {fix}")
    model_ignore = getattr(model, "ignore_index", IGNORE_INDEX)
    data_ignore = getattr(dataset, "ignore_index", model_ignore)
    if data_ignore != model_ignore:
        raise ValueError(
            f"{where} marks ignored pixels {data_ignore} but the model ignores {model_ignore}: "
            f"every part of nrdseg (crop padding, cat_max_ratio, label checks, metrics) "
            f"ignores {IGNORE_INDEX}; map the dataset's ignored pixels to {IGNORE_INDEX}"
        )
    normalization = getattr(dataset, "normalization", None)
    mean, std = getattr(model, "mean", None), getattr(model, "std", None)
    if normalization is not None and mean is not None:
        given = (_rounded(normalization[0]), _rounded(normalization[1]))
        if given != (_rounded(mean), _rounded(std)):
            raise ValueError(
                f"{where} normalizes images with mean {given[0]}, std {given[1]} but the model "
                f"with mean {_rounded(mean)}, std {_rounded(std)} (what predict and export use); "
                "build the dataset's transforms with the model's mean and std "
                "(build_transforms(mean=model.mean, std=model.std, ...))"
            )
    trained = (getattr(model, "meta", None) or {}).get("classes")
    listed = getattr(dataset, "classes", None)
    if names and trained and listed is not None and list(trained) != list(listed):
        first = next(
            (i for i, (a, b) in enumerate(zip(trained, listed, strict=False)) if a != b),
            min(len(trained), len(listed)),
        )
        raise ValueError(
            f"the model was trained on the classes {list(trained)} but {where} lists "
            f"{list(listed)} (class {first} differs): its scores would carry other names; "
            "evaluate on data with the classes the model was trained on"
        )
