"""Fine-tuning: start a model from the tensors of a checkpoint that fit it."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from nrdseg.checkpoint.format import WEIGHTS_FILE, read_record
from nrdseg.checkpoint.resolve import checkpoint_directory
from nrdseg.checkpoint.weights import LoadReport, load_matching, read_state_dict

logger = logging.getLogger("nrdseg")


def init_from_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Start ``model`` from an nrdseg checkpoint of any class count (fine-tuning).

    ``path`` is what ``nrdseg.load_model`` takes (checkpoint directory, training work dir,
    ``hf://org/name``) or a weights file. Every tensor whose name and shape fit is loaded;
    the rest keep ``model``'s own initialisation: with another class count these are the
    class-dependent layers (classifiers, the NRD controller's last 1x1, the aux classifier).
    The report (loaded / re-initialised / missing / unexpected) is logged and returned;
    ``ValueError`` if nothing fits.
    """
    where = Path(path)
    if where.is_file():
        weights, source_classes = where, None
    else:
        directory = checkpoint_directory(path)
        source_classes = read_record(directory)["model"]["num_classes"]
        weights = directory / WEIGHTS_FILE
    name = model.config.get("name", "model")
    report = load_matching(model, read_state_dict(weights), source=str(weights), what=name)
    classes = (
        "" if source_classes is None else f" ({source_classes} classes -> {model.num_classes})"
    )
    logger.info("init_from%s: %s", classes, report.summary())
    return report
