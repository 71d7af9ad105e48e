"""Evaluate a model on a dataset (one sample at a time, optionally distributed) and print it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from nrdseg.data.files import DataError, worker_errors_as_lines
from nrdseg.evaluation import runtime
from nrdseg.evaluation.inference import infer_logits
from nrdseg.evaluation.metrics import SegMetric
from nrdseg.models.dataset_fit import check_dataset_fits
from nrdseg.ops.labels import logits_to_labels
from nrdseg.ops.resize import resize
from nrdseg.utils.distributed import DistInfo, all_gather_objects
from nrdseg.utils.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class InferenceSpeed:
    """How fast inference runs (``nrdseg eval``, ``nrdseg predict``), never what it finds.

    ``workers``: DataLoader processes reading ahead, an int >= 0 (0: in this process); the
    scores and labels do not depend on it. ``amp``: ``"none"`` (float32) or ``"bf16"``
    (bfloat16 autocast, faster on GPUs; labels may differ at near-ties), the choices of
    ``nrdseg.evaluation.runtime.INFERENCE_AMP``. ``channels_last``: True or False sets the
    memory format of the model and its batches; None takes channels-last on CUDA only
    (:func:`nrdseg.evaluation.runtime.memory_format`). ``compile``: run the model through
    torch.compile, eagerly with a warning where it cannot
    (:class:`nrdseg.evaluation.runtime.CompiledOrEager`).

    ValueError naming the field for any other value.
    """

    workers: int = 0
    amp: Literal["none", "bf16"] = "none"
    channels_last: bool | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        workers = self.workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(
                f"workers must be >= 0 (DataLoader processes; 0 reads in this process), "
                f"got {workers!r}"
            )
        if self.amp not in runtime.INFERENCE_AMP:
            raise ValueError(f"amp must be one of {runtime.INFERENCE_AMP}, got {self.amp!r}")
        if not (self.channels_last is None or isinstance(self.channels_last, bool)):
            raise ValueError(
                "channels_last must be True, False or None (channels-last on CUDA only), "
                f"got {self.channels_last!r}"
            )
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")


#: In this process, float32, eager, in the model's own memory format: how the trainer's
#: evaluations run (the model they score goes on training), and :func:`evaluate`'s default.
PLAIN = InferenceSpeed(channels_last=False)


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
    speed: InferenceSpeed = PLAIN,
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

    ``speed``: :class:`InferenceSpeed` (the scores do not depend on its ``workers``, whose
    samples arrive in pinned memory on CUDA); the default, :data:`PLAIN`, keeps the
    model's memory format, as the trainer's evaluations need.
    """
    _check_inputs(model, dataset, max_samples=max_samples)
    metric = SegMetric(
        dataset.num_classes, ignore_index=dataset.ignore_index, trimap_widths=trimap_widths
    )
    info = DistInfo.current()
    count = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    run = _prepared(model, device, speed)
    skipping = getattr(dataset, "on_error", "raise") == "skip"
    samples = _Samples(dataset, range(info.rank, count, info.world_size), skipping=skipping)
    views = dict(mode=mode, crop_size=crop_size, stride=stride, scales=scales, flip=flip)
    shown = progress and info.is_main
    skipped = _score(run, samples, metric, views=views, device=device, speed=speed, progress=shown)
    metric.all_reduce()
    skipped = [message for part in all_gather_objects(info, skipped) for message in part]
    skipped = list(getattr(dataset, "dropped", [])) + skipped
    return {**metric.compute(), "classes": list(dataset.classes), "skipped": skipped}


def _check_inputs(model: nn.Module, dataset: Any, *, max_samples: int | None) -> None:
    """ValueError when ``dataset`` does not fit ``model`` or ``max_samples`` scores nothing."""
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


def _prepared(
    model: nn.Module, device: str | torch.device, speed: InferenceSpeed
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` on ``device`` in ``speed``'s memory format, compiled when it asks."""
    model.to(device)
    if runtime.memory_format(device, speed.channels_last) == torch.channels_last:
        model.to(memory_format=torch.channels_last)
    return runtime.CompiledOrEager(model) if speed.compile else model


def _score(
    run: Callable[[torch.Tensor], torch.Tensor],
    samples: _Samples,
    metric: SegMetric,
    *,
    views: Mapping[str, Any],
    device: str | torch.device,
    speed: InferenceSpeed,
    progress: bool,
) -> list[str]:
    """Add every readable sample's prediction (``infer_logits`` with ``views``) to
    ``metric``; returns the errors of the samples left out."""
    loader = torch.utils.data.DataLoader(
        samples,
        batch_size=None,  # samples differ in size: one at a time
        num_workers=speed.workers,
        pin_memory=runtime.pin_memory(device),
    )
    bar = progress_bar(
        worker_errors_as_lines(loader), total=len(loader), desc="evaluate", enabled=progress
    )
    skipped: list[str] = []
    for image, label, err in bar:
        if err is not None:
            log.warning("evaluation leaves out a sample: %s", err)
            skipped.append(str(err))
            continue
        batch = runtime.to_device(image[None], device, channels_last=speed.channels_last)
        with runtime.autocast(device, speed.amp):
            logits = infer_logits(run, batch, **views)
        pred = logits_to_labels(resize(logits.float(), label.shape[-2:]))[0]
        metric.update(pred, label.to(device, non_blocking=True))
    return skipped
