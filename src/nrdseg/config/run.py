"""The training/evaluation config: typed sections, loading with overrides, saving.

Defaults are the paper's settings where it gives one: section 3, "Implementation
details" (poly schedule, lr 0.01, weight decay 5e-4), the 4k-iteration linear warm-up of
Table 3's caption and the 84k iterations of Table 1's; the rest (momentum 0.9, min_lr
1e-4, warm-up ratio 0.01) come from the authors' configs (aim-uofa/NRD_decoder), built on
the mmseg defaults that paragraph says the paper inherits. The files under ``configs/``
spell them out anyway so that a config reads on its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nrdseg.config.packaged import find_config
from nrdseg.config.schema import ConfigError, field_default, from_dict
from nrdseg.config.signatures import check_dataset_options, check_loss_term, check_model_options
from nrdseg.config.yaml_tree import load_tree, set_dotted
from nrdseg.data.registry import dataset_class
from nrdseg.data.transforms import check_transform_settings
from nrdseg.models.loss_terms import (
    MEDIAN_FREQUENCY,
    OHEMPixelSampler,
    build_decode_loss,
    build_loss_term,
)
from nrdseg.models.segmentor import check_aux_weight
from nrdseg.models.zoo import model_spec
from nrdseg.ops.labels import BINARY_DATASET_FIX, IGNORE_INDEX, label_classes
from nrdseg.ops.sliding_window import slide_settings
from nrdseg.utils.atomic import atomic_write_bytes
from nrdseg.utils.yaml_safe import plain

#: Test-time augmentation of the paper: flip + these scales.
TTA_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _positive(**values: float | int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name}: must be > 0, got {value}")


def _non_negative(**values: float | int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")


#: ``model.options`` keys that the ``model`` section sets itself.
_MODEL_FIELDS = {
    "pretrained": "model.pretrained",
    "num_classes": "model.num_classes",
    "init_from": "model.init_from",
    "loss_decode": "the loss in the loss section (loss.decode)",
    "sampler": "the loss in the loss section (loss.sampler)",
}


@dataclass(kw_only=True)
class ModelConfig:
    """A zoo model; ``num_classes: null`` takes the training dataset's class count.

    ``pretrained``: timm's weights (true) or a backbone checkpoint file (timm, mmseg or
    nrdseg layout). ``init_from``: fine-tune from an nrdseg checkpoint directory or work
    dir of any class count (what fits is loaded, class-dependent layers re-initialised).
    """

    name: str = "nrd_r50"
    num_classes: int | None = None
    pretrained: bool | str = False
    init_from: str | None = None
    #: Further ``create_model`` keyword overrides (backbone, neck_channels, ...), checked
    #: against the model's own options; a null value drops one (inherited from a base).
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for option, instead in _MODEL_FIELDS.items():
            if option in self.options:
                raise ConfigError(f"options.{option}: set {instead} instead")
        try:
            model_spec(self.name)
        except ValueError as err:
            raise ConfigError(f"name: {err}") from None
        self.options = check_model_options(
            self.name, self.options, prefix="options.", exclude=_MODEL_FIELDS
        )
        if self.num_classes is not None:
            _positive(num_classes=self.num_classes)
        if "ignore_index" in self.options and self.options["ignore_index"] != IGNORE_INDEX:
            value = self.options["ignore_index"]
            raise ValueError(
                f"options.ignore_index: the datasets, crop padding, cat_max_ratio, label "
                f"checks and metrics all mark ignored pixels {IGNORE_INDEX}, so the loss alone "
                f"cannot ignore {value!r} (that class would be scored but never trained). "
                f"Remove the option and map the mask value to {IGNORE_INDEX} with the "
                f"dataset option label_map={{{value}: {IGNORE_INDEX}}} (reduce_zero_label: "
                "true ignores 0 and shifts the other values down by one)"
            )
        if "aux_weight" in self.options:
            aux = self.options.get("aux", True)
            try:
                check_aux_weight(self.options["aux_weight"], aux=aux is not False)
            except ValueError as err:
                raise ValueError(f"options.{err}") from err


@dataclass(kw_only=True)
class DatasetConfig:
    """``nrdseg.data.build_dataset(name, root=..., split=..., **options)``; ``split: null``
    leaves the dataset's own default (for ``folder``: every image, no split file)."""

    name: str
    root: str | None = None
    split: str | None = "train"
    #: The dataset's other keywords, checked against its constructor.
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_dataset_options(self.options, key="options")
        try:
            dataset_class(self.name)
        except ValueError as err:
            raise ConfigError(f"name: {err}") from None
        given = {
            key: getattr(self, key) for key in ("root", "split") if getattr(self, key) is not None
        }
        self.options = check_dataset_options(
            self.name, self.options, prefix="options.", given=given
        )


@dataclass(kw_only=True)
class TransformsConfig:
    """Training augmentation; ``scale`` (W, H) is also the test-time resize."""

    crop_size: tuple[int, int] | None = None
    scale: tuple[int, int] | None = None
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    #: Low-pass filter before bilinear downscaling (train and test resize). False is mmcv's
    #: cv2 INTER_LINEAR, as the authors trained; True is PIL's / torchvision's default.
    antialias: bool = False

    def __post_init__(self) -> None:
        check_transform_settings(
            crop_size=self.crop_size,
            scale=self.scale,
            ratio_range=self.ratio_range,
            cat_max_ratio=self.cat_max_ratio,
            flip_prob=self.flip_prob,
        )


@dataclass(kw_only=True)
class DataConfig:
    """``check_labels``: count the training and validation labels at start
    (``label_stats_samples`` evenly spaced masks each, 0 = all), log the tables and
    warnings, stop on an error such as 0/255 masks of a 2-class set."""

    train: DatasetConfig
    val: DatasetConfig | None = None
    transforms: TransformsConfig = field(default_factory=TransformsConfig)
    check_labels: bool = True
    label_stats_samples: int = 200

    def __post_init__(self) -> None:
        _non_negative(label_stats_samples=self.label_stats_samples)


@dataclass(kw_only=True)
class LoaderConfig:
    """``batch_size`` is per process: the total batch is batch_size x world size."""

    batch_size: int = 2
    num_workers: int = 2

    def __post_init__(self) -> None:
        _positive(batch_size=self.batch_size)
        _non_negative(num_workers=self.num_workers)


@dataclass(kw_only=True)
class OptimConfig:
    """Optimizer and poly schedule with linear warm-up (mmseg's formulas)."""

    type: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4
    #: mmseg's default decays every parameter; false exempts norm layers and biases.
    decay_norm_and_bias: bool = True
    power: float = 0.9
    min_lr: float = 1e-4
    warmup_iters: int = 4000
    warmup_ratio: float = 0.01
    grad_accum: int = 1
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        _positive(lr=self.lr, grad_accum=self.grad_accum)
        _non_negative(
            weight_decay=self.weight_decay,
            min_lr=self.min_lr,
            warmup_iters=self.warmup_iters,
            power=self.power,
        )
        if self.grad_clip is not None:
            _positive(grad_clip=self.grad_clip)
        if not 0.0 < self.warmup_ratio <= 1.0:
            raise ValueError(f"warmup_ratio: must be in (0, 1], got {self.warmup_ratio}")


@dataclass(kw_only=True)
class TrainConfig:
    """Iteration-based schedule, precision, seeding and the logging/checkpoint cadence."""

    iters: int = 84000
    amp: Literal["none", "bf16", "fp16"] = "none"
    seed: int = 0
    deterministic: bool = False
    log_interval: int = 50
    ckpt_interval: int = 4000
    keep_last: int = 3
    #: 0 evaluates only at the end (when ``data.val`` is set).
    eval_interval: int = 8000
    #: Non-finite losses skipped (and logged) before training stops; 0 stops at the first.
    max_bad_batches: int = 0

    def __post_init__(self) -> None:
        _positive(
            iters=self.iters,
            log_interval=self.log_interval,
            ckpt_interval=self.ckpt_interval,
            keep_last=self.keep_last,
        )
        _non_negative(eval_interval=self.eval_interval, max_bad_batches=self.max_bad_batches)


@dataclass(kw_only=True)
class EvalConfig:
    """Inference for evaluation; ``tta: true`` swaps in ``tta_scales`` + flip."""

    mode: Literal["whole", "slide"] = "whole"
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    tta: bool = False
    tta_scales: tuple[float, ...] = TTA_SCALES
    trimap_widths: tuple[int, ...] = (3, 5, 10, 20)
    max_samples: int | None = None

    def __post_init__(self) -> None:
        # The keys are checked against each other here, at start-up, not at the first
        # evaluation after hours of training.
        if self.mode == "slide":
            if self.crop_size is None or self.stride is None:
                raise ValueError("crop_size: mode 'slide' needs both crop_size and stride")
            slide_settings(self.crop_size, self.stride)
        elif self.crop_size is not None or self.stride is not None:
            raise ValueError(
                "crop_size: crop_size and stride apply to mode 'slide' only; set them to "
                f"null, or mode to 'slide' (mode 'whole', crop_size "
                f"{self.crop_size and list(self.crop_size)}, stride {self.stride and list(self.stride)})"
            )
        for name, scales in (("scales", self.scales), ("tta_scales", self.tta_scales)):
            if not scales or any(s <= 0 for s in scales):
                raise ValueError(f"{name}: needs one or more positive scales, got {list(scales)}")
        if self.tta and self.scales != (1.0,):
            raise ValueError(
                f"scales: {list(self.scales)} would be ignored, since tta: true evaluates at "
                f"tta_scales {list(self.tta_scales)}; set tta_scales instead"
            )
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(
                f"max_samples: must be >= 1, or null for every sample; got {self.max_samples} "
                "(0 would score no sample: every metric NaN)"
            )
        if any(w < 1 for w in self.trimap_widths) or len(set(self.trimap_widths)) < len(
            self.trimap_widths
        ):
            raise ValueError(
                f"trimap_widths: expected distinct positive widths, got {list(self.trimap_widths)}"
            )

    def inference_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nrdseg.evaluation.evaluate.evaluate``."""
        return {
            "mode": self.mode,
            "crop_size": self.crop_size,
            "stride": self.stride,
            "scales": self.tta_scales if self.tta else self.scales,
            "flip": self.flip or self.tta,
            "trimap_widths": self.trimap_widths,
            "max_samples": self.max_samples,
        }


@dataclass(kw_only=True)
class SamplerConfig:
    """OHEM (mmseg's ``OHEMPixelSampler``): the decode loss sees only the hard pixels."""

    type: Literal["ohem"] = "ohem"
    #: Keep pixels whose label's probability is below this (null: the min_kept hardest).
    thresh: float | None = None
    #: At least this many pixels per image are kept.
    min_kept: int = 100000

    def __post_init__(self) -> None:
        OHEMPixelSampler(thresh=self.thresh, min_kept=self.min_kept)


@dataclass(kw_only=True)
class LossConfig:
    """The decoder's loss: mmseg's ``loss_decode`` list and ``sampler``.

    Each ``decode`` entry is ``{type: cross_entropy | dice | focal | lovasz, loss_weight,
    ...}`` (see ``nrdseg.models.loss_terms``); a ``class_weight`` is a list with one
    number per class, or ``median_frequency``: computed at start-up from the training
    labels (``data.label_stats_samples`` evenly spaced masks, 0 = all).
    """

    decode: tuple[dict[str, Any], ...] = ({"type": "cross_entropy"},)
    sampler: SamplerConfig | None = None

    def __post_init__(self) -> None:
        decode = []
        for index, spec in enumerate(self.decode):
            where = f"decode[{index}]"
            checked = check_loss_term(spec, where=where)
            built = dict(checked)
            if built.get("class_weight") == MEDIAN_FREQUENCY:
                built.pop("class_weight")
            try:
                build_loss_term(built, where=where)
            except ImportError as err:
                raise ValueError(f"{where}: {err}") from err
            decode.append(checked)
        self.decode = tuple(decode)

    def uses_median_frequency(self) -> bool:
        return any(spec.get("class_weight") == MEDIAN_FREQUENCY for spec in self.decode)

    def check_for(self, num_classes: int | None) -> None:
        """Build the whole decode loss for a model of ``num_classes`` outputs (None: the
        dataset's, never 1): ValueError naming ``loss.decode`` for a loss that would be 0
        (every loss_weight 0), an option the model's mode lacks (``use_sigmoid``, a binary
        model's smp class weights) or class weights of another class count."""
        specs = []
        for spec in self.decode:
            checked = dict(spec)
            if checked.get("class_weight") == MEDIAN_FREQUENCY:
                # Counted from the data at start; any weights of the right count stand in.
                checked.pop("class_weight")
                if num_classes is not None:
                    checked["class_weight"] = [1.0] * label_classes(num_classes)
            specs.append(checked)
        build_decode_loss(specs, num_classes=num_classes, key="loss.decode")


@dataclass(kw_only=True)
class RunConfig:
    """A run configuration: what ``nrdseg train`` trains, evaluates and saves, one section
    per top-level key of a config YAML (``data``, ``model``, ``loader``, ``optim``,
    ``train``, ``eval``, ``loss``). Read one with :func:`load_config`; the work dir keeps
    the resolved one as ``config.yaml`` (:func:`save_config`).

    Raises:
        ValueError: a loss that does not fit the model's class count (a term that would
            be 0, a binary form it lacks), naming ``loss.decode``.
    """

    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        # Checks across sections, at load: before a work dir is made or data is read.
        self.loss.check_for(self.model.num_classes)


#: Dataset options that belong to another owner, and where they are set.
_OWNED_ELSEWHERE = {
    "mean": "normalisation is the model's: set model.options.mean (training, evaluation, "
    "predict and export all read the model's mean and std)",
    "std": "normalisation is the model's: set model.options.std (training, evaluation, "
    "predict and export all read the model's mean and std)",
    "ignore_index": f"every part of nrdseg ignores {IGNORE_INDEX}; to ignore a mask value V, "
    f"map it: label_map={{V: {IGNORE_INDEX}}}",
}


def _check_dataset_options(options: dict[str, Any], *, key: str) -> None:
    for name, where in _OWNED_ELSEWHERE.items():
        if name in options:
            raise ValueError(f"{key}.{name}: not a dataset option; {where}")
    if options.get("num_classes") == 1:
        raise ValueError(
            f"{key}.num_classes: 1 class leaves nothing to tell apart (every loss is 0, "
            f"every score 1); for binary segmentation {BINARY_DATASET_FIX}"
        )


def config_from_dict(tree: dict[str, Any], *, source: str = "config") -> RunConfig:
    """Validate a plain tree; errors read ``SOURCE: optim.lrr: unknown key; valid keys: ...``."""
    try:
        return from_dict(RunConfig, tree)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read ``path`` with its ``_base_`` files, apply dotted ``overrides``, validate.

    ``path``: a YAML file, or where none exists, a packaged config's name
    (``camvid/nrd_lite0.yaml``; :func:`nrdseg.config.packaged.find_config`).

    Raises:
        FileNotFoundError: neither a file nor a packaged config.
        ConfigError: a key or value the schema refuses, naming it.
    """
    path = find_config(path)
    tree = load_tree(path)
    for key, value in (overrides or {}).items():
        set_dotted(tree, key, value, default=lambda parts: field_default(RunConfig, parts))
    return config_from_dict(tree, source=str(path))


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The plain YAML-safe tree (tuples as lists) that :func:`config_from_dict` reads back."""
    return plain(dataclasses.asdict(config))


def save_config(config: RunConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write_bytes(path, text.encode())
    return Path(path)
