"""Rebuild a zoo model from a checkpoint: the record says which, the weights fill it."""

from __future__ import annotations

from pathlib import Path

import torch

from nrdseg.checkpoint.format import WEIGHTS_FILE, load_weights, read_record, read_weights
from nrdseg.checkpoint.resolve import checkpoint_directory
from nrdseg.models.segmentor import Segmentor
from nrdseg.models.zoo import LOSS_OPTIONS, create_model


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> Segmentor:
    """Rebuild a zoo model from a checkpoint, in eval mode on ``device``.

    ``path`` is anything :func:`nrdseg.checkpoint.resolve.checkpoint_directory` resolves:
    a checkpoint directory, a training work dir (its ``best/``, else its latest
    checkpoint) or ``hf://org/name[@revision]``. The record's ``create_model`` call is
    replayed without pretrained weights and without the training loss (so a model
    trained with an optional loss package loads without it); ``model.config`` and
    ``model.meta`` are the record's. FileNotFoundError for a missing path or weights
    file, ValueError for a record or weights that do not fit (naming the keys).
    """
    directory = checkpoint_directory(path)
    record = read_record(directory)
    options = dict(record["model"])
    name, num_classes = options.pop("name"), options.pop("num_classes")
    options["pretrained"] = False
    # The loss is training's: a model trained with Dice loads without segmentation_models_pytorch.
    options = {k: v for k, v in options.items() if k not in LOSS_OPTIONS}
    model = create_model(name, num_classes=num_classes, **options)
    model.config = dict(record["model"])
    model.meta = dict(record.get("meta") or {})
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{directory}: no {WEIGHTS_FILE}")
    load_weights(model, read_weights(weights), source=str(weights))
    return model.to(device).eval()
