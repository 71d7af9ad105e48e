"""Train-and-evaluate runs on the synthetic scenes or CamVid: the one runner behind
``nrdseg demo`` and ``nrdseg study decoders``.

A :class:`Run` (a zoo decoder, its options, a seed) and a :class:`Budget` (the encoder,
data and schedule every decoder of a comparison shares) make an engine :class:`Config`
in code, so nothing depends on the repository's ``configs/`` folder. Training and the
final evaluation are the engine's (``train_from_config``, which evaluates with
``nrdseg.evaluation.evaluate.evaluate`` and keeps the model in ``best/``). A finished run
leaves ``result.json`` and is skipped next time; an interrupted one resumes from its
last checkpoint, so a long study can be restarted with the same command.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrdseg.analysis.feature_cache import FrozenBackboneCache
from nrdseg.checkpoint.work_dir import (
    METRICS_FILE,
    RESULT_FILE,
    latest_checkpoint,
    read_best_result,
)
from nrdseg.config.run import (
    Config,
    DataConfig,
    DatasetConfig,
    EvalConfig,
    LoaderConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    TransformsConfig,
    config_from_dict,
    config_to_dict,
)
from nrdseg.engine.build import train_from_config
from nrdseg.engine.resume import config_changes
from nrdseg.models.zoo import scaled_widths
from nrdseg.utils.atomic import atomic_write_bytes

logger = logging.getLogger("nrdseg.study")

RUNS_DIR = "runs"
#: Changed settings a refused run lists before "and N more".
_SHOWN_CHANGES = 20


@dataclass(frozen=True, kw_only=True)
class Budget:
    """What every decoder of one comparison shares: encoder, data, schedule, evaluation.

    The defaults are the demo's on the synthetic scenes (see the README, "Reproducing the
    paper", for the runs that chose them); :data:`CAMVID` is the real-image budget.
    ``data`` is ``synthetic`` (made on the fly; ``image_size`` square scenes) or
    ``camvid`` (``root`` in the SegNet layout: trained on ``train_split`` with random
    ``image_size`` crops of frames resized by ``ratio_range``, scored on ``eval_split``
    at full resolution).
    """

    data: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    ratio_range: tuple[float, float] = (0.75, 1.5)
    #: CamVid: the (W, H) frames are resized to before augmentation and for scoring.
    frame_size: tuple[int, int] = (480, 360)
    pretrained: bool = False
    backbone: str = "resnet18d"
    #: Encoder stages kept at their (pretrained) weights, mmseg's ``frozen_stages``.
    frozen_stages: int = -1
    neck_channels: int = 128
    image_size: int = 128
    batch_size: int = 8
    iters: int = 300
    lr: float = 0.002
    weight_decay: float = 0.01
    warmup_iters: int = 30
    train_images: int = 2000
    val_images: int = 200
    trimap_widths: tuple[int, ...] = (1, 3, 5)
    #: Classes whose IoU the study tables show beside the mean.
    thin_classes: tuple[str, ...] = ("line", "ring", "dot")
    #: DataLoader workers; 0 gives the cores to the model (a synthetic batch takes ~30 ms).
    num_workers: int = 0
    ckpt_interval: int = 100
    #: A frozen encoder's maps are computed once per batch for all decoders of a seed
    #: (:mod:`nrdseg.analysis.feature_cache`): results are bit-identical, runs faster.
    cache_backbone: bool = False

    def model_options(self, model: str) -> dict[str, Any]:
        """The encoder, and the head's widths scaled with the neck (``scaled_widths``)."""
        return {
            "backbone": self.backbone,
            **({"frozen_stages": self.frozen_stages} if self.frozen_stages >= 0 else {}),
            "neck_channels": self.neck_channels,
            "aux_channels": min(256, self.neck_channels // 2),
            **scaled_widths(model, neck_channels=self.neck_channels),
        }


@dataclass(frozen=True, kw_only=True)
class Run:
    """One training run: ``label`` names it in tables, ``model`` is the zoo entry."""

    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.label}-seed{self.seed}"


#: The real-image study: EfficientNet-Lite0 with ImageNet weights (installed offline by
#: ``nrdseg[weights]``), frozen, so that every decoder reads the same features; CamVid at
#: half resolution (240 x 180). The default 14 decoders x 3 seeds took 126 minutes on a
#: 2-core CPU as three one-thread processes (see the README, "Real images (CamVid)").
CAMVID = Budget(
    data="camvid",
    backbone="efficientnet_lite0",
    pretrained=True,
    frozen_stages=4,
    neck_channels=256,
    frame_size=(240, 180),
    image_size=176,
    ratio_range=(0.75, 1.5),
    batch_size=8,
    iters=400,
    lr=0.002,
    warmup_iters=40,
    trimap_widths=(1, 3, 5, 10),
    thin_classes=("pole", "sign_symbol", "fence", "pedestrian", "bicyclist"),
    cache_backbone=True,
)


def describe(budget: Budget) -> str:
    """What a comparison under ``budget`` trains on and with, for table headers."""
    if budget.data == "camvid":
        width, height = budget.frame_size
        data = (
            f"CamVid (SegNet copy: frames at {width} x {height}, trained on "
            f"`{budget.train_split}` in {budget.image_size} px crops, scored on "
            f"`{budget.eval_split}` against the full-resolution labels)"
        )
    else:
        data = (
            f"synthetic scenes ({budget.image_size} x {budget.image_size}, 6 classes, "
            f"{budget.val_images} validation images)"
        )
    weights = "ImageNet" if budget.pretrained else "from scratch"
    frozen = ", frozen" if budget.frozen_stages >= 4 else ""
    if 0 <= budget.frozen_stages < 4:
        frozen = f", frozen_stages={budget.frozen_stages}"
    return (
        f"{data}, `{budget.backbone}` encoder {weights}{frozen} ({budget.neck_channels}-channel "
        f"ASPP), batch {budget.batch_size}, {budget.iters} AdamW iterations at lr {budget.lr:g}"
    )


def _data_config(budget: Budget) -> DataConfig:
    crop = (budget.image_size, budget.image_size)
    if budget.data == "synthetic":
        size = list(crop)
        return DataConfig(
            train=DatasetConfig(
                name="synthetic",
                split="train",
                options={"size": size, "length": budget.train_images, "seed": 0},
            ),
            val=DatasetConfig(
                name="synthetic",
                split="val",
                options={"size": size, "length": budget.val_images, "seed": 1},
            ),
            transforms=TransformsConfig(
                crop_size=crop, scale=crop, ratio_range=budget.ratio_range, photometric=False
            ),
        )
    if budget.data == "camvid":
        if budget.root is None:
            raise ValueError(
                "a CamVid budget needs root: the folder holding train/ and trainannot/"
            )
        return DataConfig(
            train=DatasetConfig(name="camvid", root=budget.root, split=budget.train_split),
            val=DatasetConfig(name="camvid", root=budget.root, split=budget.eval_split),
            transforms=TransformsConfig(
                crop_size=crop,
                scale=budget.frame_size,
                ratio_range=budget.ratio_range,
                photometric=False,
            ),
        )
    raise ValueError(f"budget data must be 'synthetic' or 'camvid', got {budget.data!r}")


def run_config(run: Run, budget: Budget) -> Config:
    """The engine config of ``run`` under ``budget``: the budget's train/eval splits,
    AdamW with a short warm-up, one evaluation at the end."""
    return Config(
        model=ModelConfig(
            name=run.model,
            num_classes=None,
            pretrained=budget.pretrained,
            options={**budget.model_options(run.model), **run.options},
        ),
        data=_data_config(budget),
        loader=LoaderConfig(batch_size=budget.batch_size, num_workers=budget.num_workers),
        optim=OptimConfig(
            type="adamw",
            lr=budget.lr,
            weight_decay=budget.weight_decay,
            decay_norm_and_bias=False,
            min_lr=budget.lr / 200,
            warmup_iters=budget.warmup_iters,
            warmup_ratio=0.1,
        ),
        train=TrainConfig(
            iters=budget.iters,
            seed=run.seed,
            log_interval=budget.iters,
            ckpt_interval=min(budget.ckpt_interval, budget.iters),
            keep_last=1,
            eval_interval=0,
        ),
        eval=EvalConfig(trimap_widths=budget.trimap_widths),
    )


def run_dir(out: str | Path, run: Run) -> Path:
    return Path(out) / RUNS_DIR / run.key


def train_seconds(work_dir: Path) -> float:
    """Training time from ``metrics.jsonl`` (seconds per iteration x iterations of each
    logged window), so that a run resumed after a crash still reports its whole cost."""
    seconds, last = 0.0, 0
    for line in (work_dir / METRICS_FILE).read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "resume":
            last = event["iter"]
        elif event.get("event") == "train":
            seconds += event["time_per_iter"] * (event["iter"] - last)
            last = event["iter"]
    return seconds


def settings_changes(stored: Any, tree: dict[str, Any]) -> list[str]:
    """What differs between a finished run's stored config and ``tree``, one
    ``key: then -> now`` line per setting; [] when both mean the same run. The stored
    config is read back through today's schema, so that a config key added since (with
    its default) does not void finished runs."""
    try:
        then = config_to_dict(config_from_dict(stored, source=RESULT_FILE))
    except (TypeError, ValueError) as err:
        return [f"its config does not read as a run config ({err})"]
    return config_changes(then, tree)


def _same_settings(stored: Any, tree: dict[str, Any]) -> bool:
    return not settings_changes(stored, tree)


def execute(
    run: Run,
    budget: Budget,
    *,
    out: str | Path,
    progress: bool = True,
    device: str | None = None,
    cache: FrozenBackboneCache | None = None,
) -> dict[str, Any]:
    """Train and evaluate ``run`` (or read its finished result); returns the result record.

    ``device``: where a run trains, as ``train_from_config`` takes it (default: CUDA if
    available); ``cache``: serves the frozen backbone's maps (shared by a study's runs).

    The record holds the evaluation summary (``mIoU``, ``IoU`` by class, ``trimap`` by
    width, fractions), ``train_seconds``, and the config; a finished run whose config
    differs from this one is an error rather than silently reused.
    """
    config = run_config(run, budget)
    tree = config_to_dict(config)
    work_dir = run_dir(out, run)
    result_path = work_dir / RESULT_FILE
    if result_path.is_file():
        record = json.loads(result_path.read_text())
        changes = settings_changes(record.get("config"), tree)
        if changes:
            shown = changes[:_SHOWN_CHANGES]
            if len(changes) > _SHOWN_CHANGES:
                shown.append(f"... and {len(changes) - _SHOWN_CHANGES} more")
            raise ValueError(
                f"{result_path} was run with other settings than this {run.key} "
                "(then -> now):\n" + "".join(f"  {line}\n" for line in shown) + "choose another "
                f"--out for these settings, or delete {work_dir} to redo that run with them"
            )
        logger.info("%s: finished earlier, read %s", run.key, result_path)
        return record
    latest = latest_checkpoint(work_dir) if work_dir.is_dir() else None
    summary = read_best_result(work_dir)
    if latest is None or summary is None or latest.name != f"iter_{budget.iters:06d}":
        train_from_config(
            config,
            work_dir,
            resume=latest is not None,
            progress=progress,
            device=device,
            model_hook=None if cache is None else lambda model: cache.attach(model.backbone),
        )
        summary = read_best_result(work_dir)
        if summary is None:
            raise FileNotFoundError(f"{work_dir}: the run ended without an evaluation in best/")
    record = {
        "label": run.label,
        "model": run.model,
        "seed": run.seed,
        **{key: summary[key] for key in ("mIoU", "mAcc", "aAcc", "IoU", "trimap")},
        # a small validation set's note (engine.trainer.small_validation_note)
        **{key: summary[key] for key in ("warning",) if key in summary},
        "train_seconds": train_seconds(work_dir),
        "config": tree,
    }
    atomic_write_bytes(result_path, json.dumps(record, indent=1).encode())
    return record
