"""From a :class:`RunConfig` to objects: model, datasets, evaluator, and a whole training run.

The only module that reads config sections to build things; ``Trainer`` and the parts
it uses take typed arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nrdseg.checkpoint.work_dir import (
    RUN_CONFIG_FILE,
    created_work_dir,
    latest_checkpoint,
    list_checkpoints,
    remove_stale_temporaries,
)
from nrdseg.config.run import DatasetConfig, LossConfig, RunConfig, config_to_dict, save_config
from nrdseg.config.schema import ConfigError
from nrdseg.data import DataError, build_dataset, build_transforms
from nrdseg.data.label_stats import class_pixel_counts, label_statistics
from nrdseg.engine.distributed import barrier, process_group_from_env
from nrdseg.engine.rng import seed_everything
from nrdseg.engine.trainer import Trainer
from nrdseg.evaluation.evaluate import evaluate
from nrdseg.models.loss_terms import MEDIAN_FREQUENCY, median_frequency_weights
from nrdseg.models.segmentor import Segmentor
from nrdseg.models.zoo import create_model
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD
from nrdseg.utils.distributed import DistInfo
from nrdseg.utils.openmp import WAIT_POLICY, openmp_runtime

logger = logging.getLogger("nrdseg.train")


def _normalization(config: RunConfig, model: Segmentor | None = None) -> dict[str, Any]:
    """The mean/std of ``model`` (one owner: predict and export read the model's), else the
    ones the config's model will be built with, for the transforms to match."""
    if model is not None:
        return {"mean": model.mean, "std": model.std}
    options = config.model.options
    return {"mean": options.get("mean", IMAGENET_MEAN), "std": options.get("std", IMAGENET_STD)}


def build_split(
    spec: DatasetConfig, *, train: bool, config: RunConfig, model: Segmentor | None = None
) -> Any:
    """``nrdseg.data.build_dataset`` for ``data.train`` / ``data.val`` with its transforms,
    which normalize with ``model``'s mean and std when given (see :func:`_normalization`)."""

    t = config.data.transforms
    if train:
        transforms = build_transforms(
            train=True,
            crop_size=t.crop_size,
            scale=t.scale,
            ratio_range=t.ratio_range,
            cat_max_ratio=t.cat_max_ratio,
            flip_prob=t.flip_prob,
            photometric=t.photometric,
            antialias=t.antialias,
            **_normalization(config, model),
        )
    else:
        transforms = build_transforms(
            train=False, scale=t.scale, antialias=t.antialias, **_normalization(config, model)
        )
    given = {key: getattr(spec, key) for key in ("root", "split") if getattr(spec, key) is not None}
    kwargs = {**given, **spec.options}
    try:
        return build_dataset(spec.name, transforms=transforms, **kwargs)
    except FileNotFoundError as err:
        if spec.root is None:
            raise
        raise FileNotFoundError(f"data.{'train' if train else 'val'}.root: {err}") from err


def check_labels(
    dataset: Any, *, split: str, max_samples: int, log: bool, label_map_keys: Sequence[str]
) -> None:
    """Count the labels of ``split``; log the table and warnings, raise on an error finding.

    ``label_map_keys``: the config keys a fix's ``label_map`` goes to (every split's, so
    that the sets keep agreeing). Every process counts (the same masks), so all of them
    stop together on an error.
    """

    stats = label_statistics(dataset, max_samples=max_samples)
    findings = stats.findings(label_map_keys=label_map_keys)
    if log:
        logger.info("%s labels:\n%s", split, stats.table())
        for finding in findings:
            logger.warning("%s labels: %s", split, finding.message)
    errors = [f.message for f in findings if f.severity == "error"]
    if errors:
        raise DataError(
            f"{split} labels: "
            + "\n".join(errors)
            + "\n(data.check_labels: false trains anyway; `nrdseg data check` shows the table)"
        )


def build_val_dataset(
    config: RunConfig, *, source: str = "config", model: Segmentor | None = None
) -> Any:
    """``data.val`` with the test transforms; normalized with ``model``'s mean and std when
    given (evaluating a checkpoint: its own, whatever the config says)."""
    if config.data.val is None:
        raise ValueError(f"{source}: data.val is not set; evaluation needs a validation set")
    return build_split(config.data.val, train=False, config=config, model=model)


def loss_options(config: RunConfig, train_set: Any = None) -> dict[str, Any]:
    """``create_model``'s ``loss_decode`` / ``sampler`` from the ``loss`` section ({} when
    it is the default), with ``class_weight: median_frequency`` counted on ``train_set``."""
    section = config.loss
    decode = [dict(spec) for spec in section.decode]
    if decode == [dict(spec) for spec in LossConfig().decode] and section.sampler is None:
        return {}
    if section.uses_median_frequency():
        if train_set is None:
            raise ValueError("loss.decode: class_weight median_frequency needs the training set")

        samples = config.data.label_stats_samples
        pixels, _ = class_pixel_counts(train_set, max_samples=samples)
        weights = median_frequency_weights(pixels)
        counted = min(samples, len(train_set)) if samples else len(train_set)
        logger.info(
            "median frequency class weights over %d training masks: %s",
            counted,
            ", ".join(f"{w:.3g}" for w in weights),
        )
        for spec in decode:
            if spec.get("class_weight") == MEDIAN_FREQUENCY:
                spec["class_weight"] = weights
    sampler = None if section.sampler is None else dataclasses.asdict(section.sampler)
    return {"loss_decode": decode, "sampler": sampler}


def build_model(
    config: RunConfig, *, num_classes: int | None, train_set: Any = None, resuming: bool = False
) -> Segmentor:
    """The zoo model of ``model`` with the ``loss`` section's loss; ``num_classes`` fills in
    ``model.num_classes: null``; ``train_set`` is counted for median frequency weights.

    A resumed run takes every weight from its own checkpoint, so neither
    ``model.pretrained`` (no file read, no download) nor ``model.init_from`` is read again
    (their files may be gone by then); ``model.config`` still records the setting, so the
    checkpoints of a resumed run say how it started.
    """
    classes = config.model.num_classes or num_classes
    if classes is None:
        raise ValueError("model.num_classes: not set, and the dataset does not tell it")
    model = create_model(
        config.model.name,
        num_classes=classes,
        pretrained=False if resuming else config.model.pretrained,
        init_from=None if resuming else config.model.init_from,
        **config.model.options,
        **loss_options(config, train_set),
    )
    model.config["pretrained"] = config.model.pretrained
    return model


def build_evaluator(
    config: RunConfig, dataset: Any, *, device: torch.device, progress: bool
) -> Callable[[Segmentor], dict[str, Any]]:
    """``evaluate`` bound to ``dataset`` and the ``eval`` section."""

    return functools.partial(
        evaluate,
        dataset=dataset,
        device=device,
        progress=progress,
        **config.eval.inference_options(),
    )


def default_work_dir(config_path: str | Path) -> Path:
    """``work_dirs/<path under configs/ without .yaml>``, e.g. work_dirs/cityscapes/nrd_r50."""
    parts = Path(config_path).with_suffix("").parts
    if "configs" in parts:
        last = len(parts) - 1 - parts[::-1].index("configs")
        return Path("work_dirs", *parts[last + 1 :])
    return Path("work_dirs", parts[-1])


def _prepare_work_dir(work_dir: Path, *, resume: bool, info: DistInfo) -> Path | None:
    """The checkpoint to resume from; refuses to train over an existing run without it."""
    latest = latest_checkpoint(work_dir)
    if resume and latest is None and info.is_main:
        # Schedulers requeue a job killed before its first checkpoint with --resume too.
        logger.warning("--resume: %s has no checkpoint yet; starting from iteration 0", work_dir)
    if not resume and (latest is not None or list_checkpoints(work_dir)):
        raise ValueError(
            f"{work_dir} already holds checkpoints; pass --resume to continue that run, "
            "or choose another --work-dir"
        )
    if info.is_main and work_dir.is_dir():
        remove_stale_temporaries(work_dir)
    return latest


def _set_determinism(deterministic: bool) -> None:
    """Deterministic kernels where torch has them (warn_only: bilinear upsampling's CUDA
    backward has none); cuDNN autotuning otherwise."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def share_cpu_threads(*, workers: int, info: DistInfo) -> int:
    """Torch threads for CPU training, logged: the cores split between the processes.

    Data workers get no core of their own: once their prefetch queue is full they sleep,
    and taking one of 2 idle cores from the model made a CamVid iteration 1.7x slower
    (2.10 s against 1.25). Processes do split the cores: oversubscribed cores make CPU
    training several times slower. Load that other jobs bring, now or later, costs
    little while OpenMP's threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, which the
    ``nrdseg`` command sets before torch loads; see ``nrdseg.utils.openmp``); a busy
    machine (load average >= cores) with spinning threads gets a warning saying so.
    ``OMP_NUM_THREADS``, when set, wins. Returns the thread count.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if "OMP_NUM_THREADS" in os.environ:
        why = "OMP_NUM_THREADS"
    else:
        torch.set_num_threads(max(1, cores // info.world_size))
        why = "set OMP_NUM_THREADS to choose"
    threads = torch.get_num_threads()
    policy = os.environ.get(WAIT_POLICY, "not set")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load >= cores and threads > 1 and policy.upper() != "PASSIVE":
        logger.warning(
            "load average %.1f on %d core(s): other jobs are using the CPU, and OpenMP threads "
            "that spin while they wait (%s %s) can make training many times slower; start "
            "with %s=PASSIVE (the nrdseg command sets it unless it is set) or OMP_NUM_THREADS=1",
            load,
            cores,
            WAIT_POLICY,
            policy,
            WAIT_POLICY,
        )
    logger.info(
        "CPU training: %d torch thread(s) per process on %d core(s), %d process(es), "
        "%d data worker(s) each (%s); OpenMP %s, %s %s",
        threads,
        cores,
        info.world_size,
        workers,
        why,
        openmp_runtime() or "runtime unknown",
        WAIT_POLICY,
        policy,
    )
    return threads


def check_model_builds(config: RunConfig) -> None:
    """Build ``config``'s model on the meta device (no weights, no memory, no download), so
    that an option value its constructor refuses (``num_frequencies: 0``, an odd
    ``up_kernel``, ``frozen_stages`` past the last stage...) fails before the work dir,
    the data and the label checks; ``ConfigError`` naming ``model.options``. The class
    count stands in as 2 when the dataset is to tell it."""
    try:
        with torch.device("meta"):
            create_model(
                config.model.name,
                num_classes=config.model.num_classes or 2,
                pretrained=False,
                **config.model.options,
            )
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.options: {config.model.name} cannot be built: {err}") from err


def train_from_config(
    config: RunConfig,
    work_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    console: bool | None = None,
    device: str | torch.device | None = None,
    model_hook: Callable[[Segmentor], None] | None = None,
) -> Segmentor:
    """Run (or resume) the training ``config`` describes, under torchrun or alone.

    ``progress``: the progress bar (and evaluation's); ``console``: the event lines
    (default: as ``progress``); ``device``: "cpu", "cuda", "cuda:1" (default: CUDA when
    available); ``model_hook``: called with the model once it is built, before training
    (a study attaches its backbone cache, :mod:`nrdseg.analysis.feature_cache`).
    """
    check_model_builds(config)
    with (
        process_group_from_env(device) as (info, device),
        created_work_dir(Path(work_dir), create=info.is_main) as work_dir,
    ):
        latest = _prepare_work_dir(work_dir, resume=resume, info=info)
        _prepare_process(config, device=device, info=info)
        train_set, val_set = _checked_datasets(config, log=info.is_main)
        model = _shared_model(config, train_set, resuming=latest is not None, info=info)
        if model_hook is not None:
            model_hook(model)
        evaluator, val_images = _validation(
            config, val_set, train_set, model, device=device, progress=progress
        )
        trainer = Trainer(
            model=model,
            train_dataset=train_set,
            work_dir=work_dir,
            train_cfg=config.train,
            optim_cfg=config.optim,
            loader_cfg=config.loader,
            evaluator=evaluator,
            val_images=val_images,
            config=config_to_dict(config),
            device=device,
            dist=info,
            progress=progress,
            console=console,
        )
        if latest is not None:
            trainer.resume(latest)
        if info.is_main:  # only now: a config that cannot resume this run must not replace its own
            save_config(config, work_dir / RUN_CONFIG_FILE)
        return trainer.train()


def _prepare_process(config: RunConfig, *, device: torch.device, info: DistInfo) -> None:
    """Kernel determinism, CPU threads and the seed of this process, before anything is built."""
    _set_determinism(config.train.deterministic)
    if device.type == "cpu":
        share_cpu_threads(workers=config.loader.num_workers, info=info)
    seed_everything(config.train.seed)


def _checked_datasets(config: RunConfig, *, log: bool) -> tuple[Any, Any]:
    """``data.train`` and ``data.val`` (None when unset), their labels counted and checked
    when ``data.check_labels`` (``log``: this process logs the tables)."""
    train_set = build_split(config.data.train, train=True, config=config)
    val_set = None if config.data.val is None else build_val_dataset(config)
    if config.data.check_labels:
        sets = {"training": train_set, "validation": val_set}
        keys = [f"data.{key}.options.label_map" for key in ("train", "val")]
        keys = keys[: 1 + (val_set is not None)]
        for split, dataset in sets.items():
            if dataset is not None:
                check_labels(
                    dataset,
                    split=split,
                    max_samples=config.data.label_stats_samples,
                    log=log,
                    label_map_keys=keys,
                )
    return train_set, val_set


def _shared_model(
    config: RunConfig, train_set: Any, *, resuming: bool, info: DistInfo
) -> Segmentor:
    """:func:`build_model` in every process, rank 0 first: it fetches pretrained weights,
    the others reuse them. A resumed run takes every weight from its checkpoint: no
    backbone file or download."""
    if not info.is_main:
        barrier(info)
    model = build_model(
        config,
        num_classes=getattr(train_set, "num_classes", None),
        train_set=train_set,
        resuming=resuming,
    )
    if info.is_main:
        barrier(info)
    return model


def _validation(
    config: RunConfig,
    val_set: Any,
    train_set: Any,
    model: Segmentor,
    *,
    device: torch.device,
    progress: bool,
) -> tuple[Callable[[Segmentor], dict[str, Any]] | None, int | None]:
    """The trainer's evaluator and the number of images it scores (None, None without
    ``data.val``). ValueError, now rather than at the first evaluation ``eval_interval``
    iterations later, when ``data.val`` has other classes than the model and ``data.train``."""
    if val_set is None:
        return None, None
    if val_set.num_classes != model.label_classes:
        raise ValueError(
            f"data.val has {val_set.num_classes} classes but the model predicts "
            f"{model.label_classes}; data.train and data.val must share their classes"
        )
    if list(val_set.classes) != list(train_set.classes):
        raise ValueError(
            f"data.val lists the classes {list(val_set.classes)} but data.train "
            f"{list(train_set.classes)}; data.train and data.val must share their "
            "classes (the same classes file or num_classes)"
        )
    evaluator = build_evaluator(config, val_set, device=device, progress=progress)
    limit = config.eval.max_samples
    return evaluator, len(val_set) if limit is None else min(limit, len(val_set))
