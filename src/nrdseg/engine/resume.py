"""What a resumed run takes from its checkpoint besides the weights, in today's settings.

A checkpoint keeps where the data order and the learning-rate schedule stand in units no
setting changes (samples, and the schedule's progress), so a run resumed with another
``loader.batch_size``, world size, ``optim.grad_accum`` or ``train.iters`` goes on from
where it was. Older checkpoints, which counted batches, are converted with the settings
of their own stored config. Whatever still cannot carry over is said, with its effect.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nrdseg.checkpoint.counters import DataPosition
from nrdseg.checkpoint.work_dir import TrainingState
from nrdseg.config.run import OptimConfig
from nrdseg.engine.optim import PolySchedule

logger = logging.getLogger("nrdseg.train")

#: The optim keys the learning rate at a step depends on (``PolySchedule``'s).
_SCHEDULE_KEYS = ("lr", "power", "min_lr", "warmup_iters", "warmup_ratio")


def _saved_setting(state: TrainingState, section: str, key: str, default: Any) -> Any:
    """A setting of the checkpoint's own config, or ``default`` when it kept none."""
    config = state.config if isinstance(state.config, dict) else {}
    return (config.get(section) or {}).get(key, default)


def resumed_position(
    state: TrainingState,
    *,
    dataset_size: int,
    seed: int,
    batch_size: int,
    world_size: int,
    directory: Path,
) -> DataPosition:
    """Where the data order goes on, for a training set of ``dataset_size`` samples drawn
    with ``seed`` and batches of ``batch_size`` x ``world_size``.

    A checkpoint that counted only batches is read in its own batch size (its config's
    ``loader.batch_size``) and process count (its random states). When the training set's
    size or ``train.seed`` changed, the saved offset names samples of another permutation:
    the run goes on with a fresh epoch, and says so.
    """
    saved_batch = _saved_setting(state, "loader", "batch_size", batch_size)
    saved_world = len(state.rng) or world_size
    position = state.counters.data_position
    if position is None:
        position = DataPosition.from_batches(
            state.counters.consumed_batches,
            global_batch=saved_batch * saved_world,
            dataset_size=dataset_size,
            seed=_saved_setting(state, "train", "seed", seed),
        )
    if (position.dataset_size, position.seed) != (dataset_size, seed):
        fresh = DataPosition(
            epoch=position.epoch + (position.offset > 0), dataset_size=dataset_size, seed=seed
        )
        logger.warning(
            "%s was trained on %d samples in the order of train.seed %d, this run has %d with "
            "seed %d: the %d samples it read of epoch %d cannot be found in the new order, so "
            "training goes on with a new epoch (%d)",
            directory,
            position.dataset_size,
            position.seed,
            dataset_size,
            seed,
            position.offset,
            position.epoch,
            fresh.epoch,
        )
        return fresh
    if saved_batch * saved_world != batch_size * world_size:
        logger.info(
            "resuming with batches of %d x %d process(es) instead of %d x %d: the data order "
            "goes on at sample %d of epoch %d (positions are kept in samples)",
            batch_size,
            world_size,
            saved_batch,
            saved_world,
            position.offset,
            position.epoch,
        )
    return position


def resumed_schedule(
    state: TrainingState, *, optim: OptimConfig, iters: int, directory: Path
) -> PolySchedule:
    """The poly schedule from ``state.counters.iteration`` on, for ``train.iters`` = ``iters``.

    With ``iters`` changed the schedule keeps the progress it had made and spreads the
    rest over the iterations left (:meth:`PolySchedule.rebased`), so the rate goes on
    from where it was. ValueError when ``iters`` is below the checkpoint's iteration.
    A rate that still jumps (``optim.lr``, ``min_lr``, ``power`` or the warm-up changed)
    is logged with its two values.
    """
    step = state.counters.iteration
    if iters < step:
        raise ValueError(
            f"train.iters: {iters} is below iteration {step} of {directory}; set "
            f"train.iters above {step} to train on (the checkpoint itself is a trained model)"
        )
    saved = state.schedule or {"iters": _saved_setting(state, "train", "iters", iters)}
    schedule = PolySchedule.from_config(optim, **saved)
    if schedule.iters != iters:
        restarted = PolySchedule.from_config(optim, iters=iters)
        rebased = schedule.rebased(iters=iters, at=step)
        done = schedule.progress(step) >= 1.0
        logger.warning(
            "train.iters changed from %d to %d at iteration %d: the poly schedule keeps its "
            "progress (%.0f%%) and now ends at iteration %d, the learning rate going on at "
            "%.3g (counted from the start it would have jumped to %.3g)%s",
            schedule.iters,
            iters,
            step,
            100 * schedule.progress(step),
            iters,
            rebased(step),
            restarted(step),
            "; the run had ended its schedule, so every further iteration runs at "
            "optim.min_lr: for a new schedule, start a new --work-dir with "
            f"model.init_from: {directory}"
            if done
            else "",
        )
        schedule = rebased
    saved_optim = {key: _saved_setting(state, "optim", key, None) for key in _SCHEDULE_KEYS}
    if None not in saved_optim.values():
        before = PolySchedule(**saved_optim, **schedule.state())
        if before(step) != schedule(step):
            changed = [k for k in _SCHEDULE_KEYS if saved_optim[k] != getattr(optim, k)]
            logger.warning(
                "the learning rate at iteration %d jumps from %.4g to %.4g (optim.%s changed)",
                step,
                before(step),
                schedule(step),
                ", optim.".join(changed),
            )
    return schedule


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two config trees, as
    ``key: old -> new`` lines, sorted by key (a key one tree lacks shows as None)."""
    before, after = _flatten(old), _flatten(new)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed]


def warn_about_changes(old: Any, new: Any, directory: Path) -> None:
    """Log the keys whose values differ between the checkpoint's config and this one."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    changed = config_changes(old, new)
    if changed:
        logger.warning("resuming %s with a changed config: %s", directory, "; ".join(changed[:10]))
