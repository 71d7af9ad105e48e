"""The iteration-based training loop: one process, or one of several under torchrun.

Each iteration: set the poly/warm-up learning rate, run ``grad_accum`` micro-batches
forward and backward, check the averaged loss and the gradient norm are finite, clip if
asked, step. Every ``log_interval`` iterations a line goes to the console and
``metrics.jsonl``; every ``eval_interval`` the evaluator runs and the best model is kept
in ``best/``; every ``ckpt_interval`` a resumable checkpoint is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from nrdseg.checkpoint.counters import DataPosition, TrainingCounters
from nrdseg.checkpoint.format import load_weights
from nrdseg.checkpoint.work_dir import (
    BEST,
    TrainingState,
    checkpoint_dir,
    prune_checkpoints,
    read_checkpoint,
    write_best,
    write_checkpoint,
)
from nrdseg.config.run import LoaderConfig, OptimConfig, TrainConfig
from nrdseg.data.files import worker_errors_as_lines
from nrdseg.engine.convert_sync_batchnorm import convert_sync_batchnorm
from nrdseg.engine.data_order import BatchOrder, SeededSamples, check_batch_fits
from nrdseg.engine.distributed import mean_over_ranks
from nrdseg.engine.event_log import EventLog
from nrdseg.engine.log_window import LogWindow
from nrdseg.engine.optim import PolySchedule, build_optimizer
from nrdseg.engine.resume import resumed_position, resumed_schedule, warn_about_changes
from nrdseg.engine.rng import capture_rng, restore_rng, seed_everything
from nrdseg.evaluation.report import result_summary
from nrdseg.models.dataset_fit import check_dataset_fits
from nrdseg.models.segmentor import Segmentor
from nrdseg.ops.batchnorm_checks import check_batch_statistics
from nrdseg.utils.distributed import DistInfo, all_gather_objects
from nrdseg.utils.progress import progress_bar

logger = logging.getLogger("nrdseg.train")

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingStopped(RuntimeError):
    """Training cannot go on; the message says why and which checkpoint to resume from."""


class TrainingDiverged(TrainingStopped):
    """A non-finite loss, gradient or weight stopped training; checkpoints are untouched."""


class _LossStep(nn.Module):
    """``model.loss`` as ``forward``, so that DistributedDataParallel syncs its gradients."""

    def __init__(self, model: Segmentor) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.loss(images, labels)


class Trainer:
    """Trains ``model`` on ``train_dataset`` and writes everything under ``work_dir``.

    ``evaluator(model) -> result`` (e.g. a partial of ``nrdseg.evaluation.evaluate.evaluate``)
    is called on every rank; its ``mIoU`` picks the best checkpoint. ``val_images``, the
    number of images it scores, gets a warning (at start, at the end and in
    ``best/eval.json``) when it is below :data:`SMALL_VALIDATION_SET`. ``config`` (the
    resolved config tree) is stored in each checkpoint so that a resume can tell what
    changed. With ``dist.world_size > 1`` the process group must already be initialised;
    BatchNorm becomes SyncBatchNorm and the model is wrapped in DistributedDataParallel.
    ``progress`` shows a bar (plain lines when stderr is not a terminal); ``console``
    prints the events too (default: as ``progress``).
    """

    def __init__(
        self,
        *,
        model: Segmentor,
        train_dataset: Dataset,
        work_dir: str | Path,
        train_cfg: TrainConfig,
        optim_cfg: OptimConfig | None = None,
        loader_cfg: LoaderConfig | None = None,
        evaluator: Callable[[Segmentor], dict[str, Any]] | None = None,
        val_images: int | None = None,
        config: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        dist: DistInfo | None = None,
        progress: bool = True,
        console: bool | None = None,
    ) -> None:
        self.settings = train_cfg
        self.optim_settings = optim_cfg or OptimConfig()
        self.loader_settings = loader_cfg or LoaderConfig()
        self.dist = dist or DistInfo()
        self.device = torch.device(device)
        self.work_dir = Path(work_dir)
        self.evaluator = evaluator
        #: Why best/ and its score are noisy (a small validation set), or None.
        self.validation_note = (
            None
            if evaluator is None or val_images is None
            else small_validation_note(
                val_images,
                selecting=0 < train_cfg.eval_interval < train_cfg.iters,
            )
        )
        if self.validation_note is not None and self.dist.is_main:
            logger.warning("%s", self.validation_note)
        self.config = config
        self.progress = progress and self.dist.is_main
        #: Event lines on the console (default: with the progress bar).
        self.console = (progress if console is None else console) and self.dist.is_main
        if train_cfg.amp == "fp16" and self.device.type != "cuda":
            raise ValueError("train.amp: 'fp16' needs a CUDA device; use 'bf16' on CPU")
        dataset_classes = getattr(train_dataset, "num_classes", model.label_classes)
        check_dataset_fits(
            model,
            train_dataset,
            where="the training set",
            fix=f"set model.num_classes to {dataset_classes} or null",
        )
        model.meta = {
            key: getattr(train_dataset, key)
            for key in ("classes", "palette")
            if hasattr(train_dataset, key)
        }
        self.train_dataset = train_dataset
        if self.dist.enabled:
            model = convert_sync_batchnorm(model.to(self.device), device=self.device)
        self.model = model.to(self.device)
        _check_training_batch(self.model, self.loader_settings.batch_size)
        check_batch_fits(
            len(train_dataset),
            batch_size=self.loader_settings.batch_size,
            world_size=self.dist.world_size,
        )
        step = _LossStep(self.model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            step = DistributedDataParallel(step, device_ids=ids)
        self.step_module = step
        self.optimizer = build_optimizer(self.model, self.optim_settings)
        self.schedule = PolySchedule.from_config(self.optim_settings, iters=train_cfg.iters)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=train_cfg.amp == "fp16")
        #: Where the run stands; a checkpoint saves them, a resume restores them.
        self.counters = TrainingCounters(
            data_position=DataPosition(dataset_size=len(train_dataset), seed=train_cfg.seed)
        )
        self.last_checkpoint: Path | None = None
        seed_everything(train_cfg.seed + self.dist.rank)

    # -- resuming ----------------------------------------------------------------------
    def resume(self, directory: str | Path) -> None:
        """Continue exactly where the checkpoint ``directory`` left off."""
        checkpoint = read_checkpoint(directory)
        state, saved = checkpoint.state, checkpoint.record["model"]
        # Read first: a run that cannot resume is refused before anything is loaded.
        position = resumed_position(
            state,
            dataset_size=len(self.train_dataset),
            seed=self.settings.seed,
            batch_size=self.loader_settings.batch_size,
            world_size=self.dist.world_size,
            directory=checkpoint.directory,
        )
        schedule = resumed_schedule(
            state,
            optim=self.optim_settings,
            iters=self.settings.iters,
            directory=checkpoint.directory,
        )
        source = f"{directory} ({saved['name']}, {saved['num_classes']} classes)"
        load_weights(self.model, checkpoint.weights, source=source)
        self.optimizer.load_state_dict(state.optimizer)
        self.scaler.load_state_dict(state.scaler)
        self.counters = dataclasses.replace(state.counters, data_position=position)
        self.schedule = schedule
        self.last_checkpoint = checkpoint.directory
        rngs = state.rng
        if len(rngs) != self.dist.world_size:
            logger.warning(
                "%s was written by %d process(es), resuming with %d: the data order goes on "
                "exactly, but the random streams (dropout) differ from an uninterrupted run",
                directory,
                len(rngs),
                self.dist.world_size,
            )
        restore_rng(rngs[self.dist.rank % len(rngs)])
        warn_about_changes(state.config, self.config, checkpoint.directory)

    def _training_state(self) -> TrainingState:
        return TrainingState(
            counters=self.counters,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=all_gather_objects(self.dist, capture_rng()),
            config=self.config,
            schedule=self.schedule.state(),
        )

    # -- the loop ----------------------------------------------------------------------
    @property
    def _global_batch(self) -> int:
        return self.loader_settings.batch_size * self.dist.world_size

    def _batches(self) -> Iterator[dict[str, Any]]:
        order = BatchOrder(
            dataset_size=len(self.train_dataset),
            batch_size=self.loader_settings.batch_size,
            seed=self.settings.seed,
            start=self.counters.data_position,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        workers = self.loader_settings.num_workers
        return worker_errors_as_lines(
            DataLoader(
                SeededSamples(self.train_dataset),
                batch_sampler=order,
                num_workers=workers,
                pin_memory=self.device.type == "cuda",
                # Its own generator: making the iterator must not draw from the global one.
                generator=torch.Generator(),
            )
        )

    def train(self, *, until: int | None = None) -> Segmentor:
        """Train to ``train.iters`` (or stop after iteration ``until``, with a checkpoint)."""
        settings, counters = self.settings, self.counters
        stop = settings.iters if until is None else min(until, settings.iters)
        bar = progress_bar(
            total=settings.iters,
            initial=counters.iteration,
            desc="train",
            unit="it",
            enabled=self.progress,
        )
        events = self._open_events()
        self.model.train()
        window = LogWindow()
        batches = window.timed(self._batches())
        try:
            while counters.iteration < stop:
                lr = self.schedule.apply(self.optimizer, counters.iteration)
                terms = self._step(batches, events)
                if terms is None:  # a bad batch, skipped
                    continue
                counters.iteration += 1
                step, done = counters.iteration, counters.iteration == settings.iters
                window.add(terms)
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{lr:.2e}")
                if done or step % settings.log_interval == 0:
                    self._log(window, lr=lr, events=events)
                with window.paused():  # time_per_iter and the ETA count training only
                    if self.evaluator is not None and (done or _due(step, settings.eval_interval)):
                        self._evaluate(events)
                    if step == stop or _due(step, settings.ckpt_interval):
                        self._save(events)
        finally:
            bar.close()
            if events is not None:
                events.close()
        self._warn_about_best()
        return self.model

    def _open_events(self) -> EventLog | None:
        """The event log (rank 0 only), told of a resume and of samples dropped at start."""
        if not self.dist.is_main:
            return None
        events = EventLog(work_dir=self.work_dir, console=self.console)
        iteration = self.counters.iteration
        if iteration > 0:
            events.write({"event": "resume", "iter": iteration})
        dropped = getattr(self.train_dataset, "skipped", 0)
        if dropped:  # samples whose files were missing at start
            events.write({"event": "data", "iter": iteration, "dropped_samples": dropped})
        return events

    def _log(self, window: LogWindow, *, lr: float, events: EventLog | None) -> None:
        """The ``train`` event of the iterations since the last one."""
        iteration = self.counters.iteration
        event = window.event(iteration=iteration, lr=lr, remaining=self.settings.iters - iteration)
        if self.counters.skipped_samples:
            event["skipped_samples"] = self.counters.skipped_samples
        if self.device.type == "cuda":
            event["max_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        if events is not None:
            events.write(event)

    def _warn_about_best(self) -> None:
        """Repeat the small validation set's note at the end, beside best/'s score."""
        best = self.counters.best_iteration
        if self.validation_note is not None and best is not None and self.dist.is_main:
            logger.warning(
                "best/ (iteration %d, mIoU %.4f): %s",
                best,
                self.counters.best_metric,
                self.validation_note,
            )

    def _step(
        self, batches: Iterator[dict[str, Any]], events: EventLog | None
    ) -> dict[str, float] | None:
        """One optimizer step over ``grad_accum`` micro-batches; None for a skipped batch."""
        saved = self._buffers() if self.settings.max_bad_batches else None
        self.optimizer.zero_grad(set_to_none=True)
        keys, sums, replaced = self._accumulate(batches)
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads)
        replaced_count = torch.tensor([float(replaced)], device=sums.device)
        values = mean_over_ranks(
            self.dist, torch.cat([sums, grad_norm.float().reshape(1), replaced_count])
        ).tolist()
        self.counters.skipped_samples += round(values[-1] * self.dist.world_size)
        terms = dict(zip(keys, values[:-2], strict=True))
        terms["grad_norm"] = values[-2]
        finite = all(math.isfinite(v) for v in values[:-2])
        # Under fp16 an overflowing gradient is the GradScaler's to skip, not a bad batch.
        if not finite or not (math.isfinite(terms["grad_norm"]) or self.scaler.is_enabled()):
            self._bad_batch(terms, saved, events)
            return None
        if self.optim_settings.grad_clip is not None:
            torch.nn.utils.clip_grads_with_norm_(
                self.model.parameters(), self.optim_settings.grad_clip, grad_norm
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms

    def _accumulate(self, batches: Iterator[dict[str, Any]]) -> tuple[list[str], torch.Tensor, int]:
        """Forward and backward over ``grad_accum`` micro-batches (DDP syncs gradients on
        the last only): the loss terms' names, their sums (each term / ``grad_accum``)
        and the samples served in place of unreadable ones."""
        accum = self.optim_settings.grad_accum
        amp = self.settings.amp
        sums, keys, replaced = None, None, 0
        counters = self.counters
        for micro in range(accum):
            batch = next(batches)
            counters.consumed_batches += 1
            counters.data_position = counters.data_position.after_batch(self._global_batch)
            replaced += int(batch["replaced"].sum())
            images = batch["image"].to(self.device, non_blocking=True)
            labels = batch["label"].to(self.device, non_blocking=True)
            syncing = micro == accum - 1 or not isinstance(
                self.step_module, DistributedDataParallel
            )
            with contextlib.nullcontext() if syncing else self.step_module.no_sync():
                with torch.autocast(
                    self.device.type, dtype=_AMP_DTYPES.get(amp), enabled=amp != "none"
                ):
                    losses = self.step_module(images, labels)
                self.scaler.scale(losses["loss"] / accum).backward()
            keys = sorted(losses)
            terms = torch.stack([losses[k].detach().float() for k in keys]) / accum
            sums = terms if sums is None else sums + terms
        return keys, sums, replaced

    # -- bad batches -------------------------------------------------------------------
    def _buffers(self) -> list[torch.Tensor]:
        return [b.detach().clone() for b in self.model.buffers()]

    def _where_to_resume(self) -> str:
        if self.last_checkpoint is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint is {self.last_checkpoint} (continue with --resume)"

    def _bad_batch(
        self,
        terms: dict[str, float],
        saved: list[torch.Tensor] | None,
        events: EventLog | None,
    ) -> None:
        """Skip a batch with a non-finite loss or gradient, or stop when over the limit."""
        self.counters.bad_batches += 1
        bad, at = self.counters.bad_batches, self.counters.iteration + 1
        limit = self.settings.max_bad_batches
        shown = ", ".join(f"{k} {v:.4g}" for k, v in terms.items())
        what = f"non-finite loss or gradient at iteration {at} ({shown})"
        if events is not None:
            events.write({"event": "bad_batch", "iter": at, "count": bad} | terms)
        if bad > limit:
            raise TrainingDiverged(
                f"training stopped: {what}; {bad} bad batch(es), more than "
                f"train.max_bad_batches = {limit}; {self._where_to_resume()}"
            )
        logger.warning("%s: batch skipped (%d of at most %d)", what, bad, limit)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, value in zip(self.model.buffers(), saved or [], strict=True):
                buffer.copy_(value)

    # -- evaluation and checkpoints ----------------------------------------------------
    def _evaluate(self, events: EventLog | None) -> None:
        self.model.eval()
        try:
            result = self.evaluator(self.model)
        finally:
            self.model.train()
        summary = result_summary(result)
        miou, counters = summary["mIoU"], self.counters
        improved = miou is not None and (
            counters.best_metric is None or miou > counters.best_metric
        )
        if improved:
            counters.best_metric, counters.best_iteration = miou, counters.iteration
        if events is not None:
            events.write({"event": "eval", "iter": counters.iteration, **summary})
            if improved:
                record = {"iter": counters.iteration, **summary}
                if self.validation_note is not None:
                    record["warning"] = self.validation_note
                with self._writing(self.work_dir / BEST):
                    best = write_best(self.work_dir, model=self.model, result=record)
                logger.info(
                    "new best mIoU %.4f at iteration %d -> %s", miou, counters.iteration, best
                )

    def _save(self, events: EventLog | None) -> None:
        bad = [
            name
            for name, tensor in (*self.model.named_parameters(), *self.model.named_buffers())
            if tensor.is_floating_point() and not torch.isfinite(tensor).all()
        ]
        if bad:
            raise TrainingDiverged(
                f"training stopped: non-finite values in {', '.join(bad[:5])} at iteration "
                f"{self.counters.iteration}; not saved; {self._where_to_resume()}"
            )
        state = self._training_state()
        path = checkpoint_dir(self.work_dir, self.counters.iteration)
        if events is not None:
            with self._writing(path):
                write_checkpoint(self.work_dir, model=self.model, state=state)
            removed = prune_checkpoints(self.work_dir, keep_last=self.settings.keep_last)
            events.write(
                {"event": "checkpoint", "iter": self.counters.iteration, "path": str(path)}
                | ({"removed": [p.name for p in removed]} if removed else {})
            )
        self.last_checkpoint = path

    @contextlib.contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        """A failed write (a full disk, say) stops training with a message naming ``path``
        and the checkpoint to resume from; the atomic writers leave no half of ``path``."""
        try:
            yield
        except OSError as err:
            raise TrainingStopped(
                f"training stopped at iteration {self.counters.iteration}: cannot write {path} "
                f"({err}); {self._where_to_resume()}"
            ) from err


#: Validation sets with fewer images than this are small: their mIoU has a standard
#: error of about s / sqrt(n) for a spread s of the per-image IoU, typically 0.1-0.2,
#: so of 1-2 points or more (10 images: 3-6 points), as large as the differences that
#: decide which checkpoint is best.
SMALL_VALIDATION_SET = 100


def small_validation_note(images: int, *, selecting: bool) -> str | None:
    """What a validation set of ``images`` images means for ``best/`` (None when it is
    not small); ``selecting``: several evaluations pick ``best/`` among checkpoints."""
    if images >= SMALL_VALIDATION_SET:
        return None
    low, high = (100 * spread / math.sqrt(max(images, 1)) for spread in (0.1, 0.2))
    chosen = (
        "best/ is chosen by mIoU on these same images, so it may be picked by noise and "
        "its score is optimistic"
        if selecting
        else "best/'s mIoU is that noisy"
    )
    return (
        f"small validation set: {images} image(s), fewer than {SMALL_VALIDATION_SET}; the "
        f"standard error of its mIoU is about s/sqrt({images}) = {low:.0f}-{high:.0f} points "
        f"for a typical per-image IoU spread s of 0.1-0.2; {chosen}. Validate on more "
        "images, or score best/ on images it was not chosen on (nrdseg eval)"
    )


def _due(iteration: int, interval: int) -> bool:
    """Whether ``iteration`` is one of every ``interval``-th (never for ``interval`` 0)."""
    return interval > 0 and iteration % interval == 0


def _check_training_batch(model: nn.Module, batch_size: int) -> None:
    """The model's batch precondition, checked in training mode before any data loads."""
    was_training = model.training
    model.train()
    try:
        check_batch_statistics(model, batch_size)
    finally:
        model.train(was_training)
