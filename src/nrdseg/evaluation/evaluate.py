"""Evaluate a model on a dataset (one sample at a time, optionally distributed) and print it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from nrdseg.data.files import DataError, worker_errors_as_lines
from nrdseg.evaluation import runtime
from nrdseg.evaluation.inference import infer_logits
from nrdseg.evaluation.metrics import SegMetric
from nrdseg.models.dataset_fit import check_dataset_fits
from nrdseg.ops.labels import logits_to_labels
from nrdseg.ops.resize import resize
from nrdseg.utils.progress import progress_bar

log = logging.getLogger(__name__)


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sample(dataset: Any, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, label) of sample ``index`` itself (never a training-style replacement),
    with an error naming the sample when malformed."""
    sample = dataset.sample(index) if hasattr(dataset, "sample") else dataset[index]
    where = f"dataset[{index}]" + (f" ({sample['path']})" if "path" in sample else "")
    missing = [key for key in ("image", "label") if key not in sample]
    if missing:
        raise KeyError(f"{where} has no {missing}; expected keys 'image', 'label', 'path'")
    image, label = torch.as_tensor(sample["image"]), torch.as_tensor(sample["label"])
    if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise ValueError(
            f"{where}: image must be a float (3, H, W) tensor, got {image.dtype} "
            f"{tuple(image.shape)}"
        )
    if label.ndim != 2:
        raise ValueError(f"{where}: label must be (H, W), got shape {tuple(label.shape)}")
    return image, label


class _Samples(torch.utils.data.Dataset):
    """``(image, label, None)`` of the samples ``indices``, or ``(None, None, error)`` for
    an unreadable one when ``skipping``; read in DataLoader workers."""

    def __init__(self, dataset: Any, indices: range, *, skipping: bool) -> None:
        self.dataset, self.indices, self.skipping = dataset, indices, skipping

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Any, Any, DataError | None]:
        try:
            return (*_sample(self.dataset, self.indices[position]), None)
        except DataError as err:
            if not self.skipping:
                raise
            return None, None, err


def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    mode: str = "whole",
    crop_size: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    trimap_widths: Sequence[int] = (3, 5, 10, 20),
    device: str | torch.device = "cpu",
    progress: bool = True,
    max_samples: int | None = None,
    workers: int = 0,
    amp: str = "none",
    channels_last: bool | None = False,
    compile: bool = False,
) -> dict[str, Any]:
    """Dataset-level scores of ``model`` (``SegMetric.compute()`` plus ``classes``).

    A binary model (one logit) is scored on its 2-class dataset (background, class) as
    any other: class 1 where ``sigmoid(logit) > 0.5``, a 2 x 2 confusion matrix, the IoU
    of both classes. ValueError when the dataset does not fit the model (see
    :func:`nrdseg.models.dataset_fit.check_dataset_fits`: class count, ignore label,
    normalisation, class names).

    The model is moved to ``device``. Samples go through one at a time because their
    sizes differ; logits are resized to the label's size (the eval transform may have
    rescaled the image) before the argmax. Under torch.distributed each rank takes every
    world_size-th sample and the confusion matrices are summed over ranks, so every rank
    returns the full result.

    Every readable sample counts exactly once. With ``on_error="skip"`` on the dataset a
    bad sample is left out (not replaced by its neighbour, as in training) and ``skipped``
    lists the errors, which name the files, of all ranks and of the samples the dataset
    dropped when it was built.

    ``workers`` DataLoader processes read the samples ahead (0: in this process; the
    scores do not depend on it); on CUDA they arrive in pinned memory. ``amp``,
    ``channels_last`` and ``compile`` are :mod:`nrdseg.evaluation.runtime`'s inference
    settings (``channels_last=None``: on CUDA; the default keeps the model's format,
    as the trainer's evaluations need).
    """
    num_classes = dataset.num_classes
    # Class count, ignore label, normalisation and class names: the model's and the
    # dataset's must agree, or the scores are of something else (DDP unwrapped inside).
    check_dataset_fits(
        model,
        dataset,
        where="the dataset",
        fix="evaluate on data with the classes the model was trained on",
        names=True,
    )
    if max_samples is not None and max_samples < 1:
        raise ValueError(
            f"max_samples must be >= 1 or None (every sample), got {max_samples}: "
            "0 would score no sample"
        )
    metric = SegMetric(num_classes, ignore_index=dataset.ignore_index, trimap_widths=trimap_widths)
    rank, world = _rank_and_world()
    count = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    model.to(device)
    if runtime.memory_format(device, channels_last) == torch.channels_last:
        model.to(memory_format=torch.channels_last)
    run = runtime.CompiledOrEager(model) if compile else model
    skipping = getattr(dataset, "on_error", "raise") == "skip"
    skipped: list[str] = []
    loader = torch.utils.data.DataLoader(
        _Samples(dataset, range(rank, count, world), skipping=skipping),
        batch_size=None,  # samples differ in size: one at a time
        num_workers=workers,
        pin_memory=runtime.pin_memory(device),
    )
    bar = progress_bar(
        worker_errors_as_lines(loader),
        total=len(loader),
        desc="evaluate",
        enabled=progress and rank == 0,
    )
    for image, label, err in bar:
        if err is not None:
            log.warning("evaluation leaves out a sample: %s", err)
            skipped.append(str(err))
            continue
        with runtime.autocast(device, amp):
            logits = infer_logits(
                run,
                runtime.to_device(image[None], device, channels_last=channels_last),
                mode=mode,
                crop_size=crop_size,
                stride=stride,
                scales=scales,
                flip=flip,
            )
        pred = logits_to_labels(resize(logits.float(), label.shape[-2:]))[0]
        metric.update(pred, label.to(device, non_blocking=True))
    metric.all_reduce()
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, skipped)
        skipped = [message for part in gathered for message in part]
    skipped = list(getattr(dataset, "dropped", [])) + skipped
    return {**metric.compute(), "classes": list(dataset.classes), "skipped": skipped}
