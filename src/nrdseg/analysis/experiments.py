"""Train-and-evaluate runs on the synthetic scenes or CamVid: the one runner behind
``nrdseg demo`` and ``nrdseg study decoders``.

A :class:`Budget` names a packaged study config (``configs/studies/``: the NRD row of a
comparison, which ``nrdseg train`` runs as it is) and overrides every decoder of the
comparison shares; a :class:`Run` (a zoo decoder, its options, a seed) adds the few
``--set`` overrides that make another row (:func:`run_overrides`), so that every run is
``nrdseg train CONFIG --set ...`` exactly (:func:`run_command`). Training and the final
evaluation are the engine's (``train_from_config``, which evaluates with
``nrdseg.evaluation.evaluate.evaluate`` and keeps the model in ``best/``). A finished run
leaves ``result.json`` and is skipped next time; an interrupted one resumes from its last
checkpoint, so a long study can be restarted with the same command.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrdseg.analysis.feature_cache import FrozenBackboneCache
from nrdseg.checkpoint.work_dir import (
    METRICS_FILE,
    RESULT_FILE,
    RUN_CONFIG_FILE,
    latest_checkpoint,
    read_best_result,
)
from nrdseg.config.run import RunConfig, config_from_dict, config_to_dict, load_config
from nrdseg.engine.build import train_from_config
from nrdseg.engine.resume import config_changes
from nrdseg.models.zoo import scaled_widths
from nrdseg.utils.atomic import atomic_write_bytes
from nrdseg.utils.yaml_read import load_yaml

logger = logging.getLogger("nrdseg.study")

RUNS_DIR = "runs"
#: Changed settings a refused run lists before "and N more".
_SHOWN_CHANGES = 20


@dataclass(frozen=True, kw_only=True)
class Budget:
    """What every decoder of one comparison shares: a packaged study config and overrides.

    ``config``: a packaged config name (:func:`nrdseg.config.packaged.get_config_file`) or
    a YAML path, the comparison's NRD row; ``overrides``: dotted keys as ``--set`` takes
    them (``{"train.iters": 50}``), applied to every run; ``thin_classes``: classes whose
    IoU the study tables show beside the mean; ``cache_backbone``: a frozen encoder's maps
    are computed once per batch for all decoders of a seed
    (:mod:`nrdseg.analysis.feature_cache`; results bit-identical, runs faster).
    """

    config: str = "studies/synthetic.yaml"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    thin_classes: tuple[str, ...] = ("line", "ring", "dot")
    cache_backbone: bool = False

    def base_config(self) -> RunConfig:
        """The NRD row's resolved config under these overrides."""
        return load_config(self.config, dict(self.overrides))

    def with_overrides(self, **changes: Any) -> Budget:
        """This budget with more overrides: ``with_overrides(**{"train.iters": 50})``."""
        return dataclasses.replace(self, overrides={**self.overrides, **changes})


#: The synthetic scenes (the defaults), and ``--quick``'s smoke-run version of them.
SYNTHETIC = Budget()
SYNTHETIC_QUICK = Budget(config="studies/synthetic_quick.yaml")
#: The real-image study: EfficientNet-Lite0 with ImageNet weights, frozen, so that every
#: decoder reads the same features; CamVid at half resolution (240 x 180). The default 14
#: decoders x 3 seeds took 126 minutes on a 2-core CPU as three one-thread processes (see
#: the docs, "Reproducing the paper"). Needs the data root: :func:`with_root`.
CAMVID = Budget(
    config="studies/camvid.yaml",
    thin_classes=("pole", "sign_symbol", "fence", "pedestrian", "bicyclist"),
    cache_backbone=True,
)
CAMVID_QUICK = dataclasses.replace(CAMVID, config="studies/camvid_quick.yaml")


def with_root(budget: Budget, root: str | Path) -> Budget:
    """``budget`` reading its training and evaluation data from ``root``."""
    return budget.with_overrides(**{"data.train.root": str(root), "data.val.root": str(root)})


def with_changes(
    budget: Budget,
    *,
    iters: int | None = None,
    backbone: str | None = None,
    image_size: int | None = None,
) -> Budget:
    """The study command's ``--iters``, ``--backbone`` and ``--image-size`` as overrides.

    ``iters`` also moves logging and the last checkpoint to the end; ``image_size`` (px)
    is the square crop, and on the synthetic scenes the scene size too (CamVid frames keep
    the config's ``scale``).
    """
    base = budget.base_config()
    changes: dict[str, Any] = {}
    if iters is not None:
        changes.update(
            {
                "train.iters": iters,
                "train.log_interval": iters,
                "train.ckpt_interval": min(base.train.ckpt_interval, iters),
            }
        )
    if backbone is not None:
        changes["model.options.backbone"] = backbone
    if image_size is not None:
        size = [image_size, image_size]
        changes["data.transforms.crop_size"] = size
        if base.data.train.name == "synthetic":
            changes.update(
                {
                    "data.transforms.scale": size,
                    "data.train.options.size": size,
                    "data.val.options.size": size,
                }
            )
    return budget.with_overrides(**changes)


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


def run_overrides(run: Run, budget: Budget) -> dict[str, Any]:
    """The dotted overrides that turn ``budget``'s config into ``run``: the budget's own,
    then the model, its head widths scaled with the neck (``scaled_widths``; the base
    model's widths dropped with ``null`` when the model differs), ``run.options`` and the
    seed. Only what differs from the config is set."""
    base = budget.base_config()
    neck = base.model.options["neck_channels"]
    changes: dict[str, Any] = dict(budget.overrides)
    options: dict[str, Any] = {}
    if run.model != base.model.name:
        changes["model.name"] = run.model
        options = dict.fromkeys(scaled_widths(base.model.name, neck_channels=neck))
    options.update(scaled_widths(run.model, neck_channels=neck), **run.options)
    for key, value in options.items():
        if base.model.options.get(key) != value:
            changes[f"model.options.{key}"] = value
    if run.seed != base.train.seed:
        changes["train.seed"] = run.seed
    return changes


def run_config(run: Run, budget: Budget) -> RunConfig:
    """The engine config of ``run`` under ``budget``: the budget's config with
    :func:`run_overrides`, exactly what :func:`run_command` trains."""
    return load_config(budget.config, run_overrides(run, budget))


def _set_value(value: Any) -> str:
    """``value`` as ``--set`` reads it back (YAML): strings bare, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def run_command(run: Run, budget: Budget, *, work_dir: str | Path | None = None) -> str:
    """The shell command that trains ``run`` as the study does: ``nrdseg train`` with
    the budget's config and :func:`run_overrides` (``--work-dir`` when given)."""
    words = ["nrdseg", "train", budget.config]
    for key, value in run_overrides(run, budget).items():
        words += ["--set", f"{key}={_set_value(value)}"]
    if work_dir is not None:
        words += ["--work-dir", str(work_dir)]
    return shlex.join(words)


def describe(budget: Budget) -> str:
    """What a comparison under ``budget`` trains on and with, for table headers."""
    config = budget.base_config()
    data, model, train = config.data, config.model, config.train
    crop = data.transforms.crop_size[0]
    if data.train.name == "camvid":
        width, height = data.transforms.scale
        where = (
            f"CamVid (SegNet copy: frames at {width} x {height}, trained on "
            f"`{data.train.split}` in {crop} px crops, scored on "
            f"`{data.val.split}` against the full-resolution labels)"
        )
    else:
        where = (
            f"synthetic scenes ({crop} x {crop}, 6 classes, "
            f"{data.val.options['length']} validation images)"
        )
    weights = "ImageNet" if model.pretrained else "from scratch"
    frozen_stages = model.options.get("frozen_stages", -1)
    frozen = ", frozen" if frozen_stages >= 4 else ""
    if 0 <= frozen_stages < 4:
        frozen = f", frozen_stages={frozen_stages}"
    return (
        f"{where}, `{model.options['backbone']}` encoder {weights}{frozen} "
        f"({model.options['neck_channels']}-channel ASPP), batch {config.loader.batch_size}, "
        f"{train.iters} AdamW iterations at lr {config.optim.lr:g}"
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


def _refuse_other_settings(stored: Any, tree: dict[str, Any], *, source: Path, run: Run) -> None:
    """ValueError listing each setting ``source`` (a run's result or config) has other
    than ``tree``: a work dir is reused or resumed only for the very same run."""
    changes = settings_changes(stored, tree)
    if not changes:
        return
    shown = changes[:_SHOWN_CHANGES]
    if len(changes) > _SHOWN_CHANGES:
        shown.append(f"... and {len(changes) - _SHOWN_CHANGES} more")
    raise ValueError(
        f"{source} was run with other settings than this {run.key} (then -> now):\n"
        + "".join(f"  {line}\n" for line in shown)
        + f"choose another --out for these settings, or delete {source.parent} to redo that "
        "run with them"
    )


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
    width, fractions), ``train_seconds``, the command and the config; a work dir whose
    result or ``config.yaml`` holds other settings (another study's run in the same
    ``out``, say) is an error rather than silently reused or resumed.
    """
    config = run_config(run, budget)
    tree = config_to_dict(config)
    work_dir = run_dir(out, run)
    result_path = work_dir / RESULT_FILE
    if result_path.is_file():
        record = json.loads(result_path.read_text())
        _refuse_other_settings(record.get("config"), tree, source=result_path, run=run)
        logger.info("%s: finished earlier, read %s", run.key, result_path)
        return record
    stored = work_dir / RUN_CONFIG_FILE
    if stored.is_file():  # trained or begun without the study (its printed command, say)
        _refuse_other_settings(
            load_yaml(stored.read_text(), name=str(stored)), tree, source=stored, run=run
        )
    latest = latest_checkpoint(work_dir) if work_dir.is_dir() else None
    summary = read_best_result(work_dir)
    if latest is None or summary is None or latest.name != f"iter_{config.train.iters:06d}":
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
        "command": run_command(run, budget, work_dir=work_dir),
        "config": tree,
    }
    atomic_write_bytes(result_path, json.dumps(record, indent=1).encode())
    return record
