"""Optimizer with its parameter groups, and the poly learning rate with linear warm-up."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from nrdseg.config.run import OptimConfig

#: torch's norms; subclasses include nrdseg's CPU SyncBN and most of timm's.
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)


def is_norm(module: nn.Module) -> bool:
    """A norm layer: torch's and their subclasses, and timm's own (RmsNorm, SimpleNorm,
    EvoNorm, FilterResponseNorm...), which derive from nn.Module only and which timm
    names ``*Norm*``."""
    kind = type(module)
    return isinstance(module, _NORMS) or (
        kind.__module__.startswith("timm.layers") and "Norm" in kind.__name__
    )


def parameter_groups(model: nn.Module, *, weight_decay: float, decay_norm_and_bias: bool):
    """One group with ``weight_decay``, and one without for norm weights and all biases
    unless ``decay_norm_and_bias`` (mmseg's default, used by the paper's configs)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    exempt = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if is_norm(module) or name == "bias":
                exempt.add(id(param))
    return [
        {"params": [p for p in params if id(p) not in exempt], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in exempt], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, settings: OptimConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW over :func:`parameter_groups`; the schedule sets ``lr``."""
    groups = parameter_groups(
        model,
        weight_decay=settings.weight_decay,
        decay_norm_and_bias=settings.decay_norm_and_bias,
    )
    if settings.type == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum)
    return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas)


@dataclass(frozen=True, kw_only=True)
class PolySchedule:
    """Poly decay from ``lr`` to ``min_lr`` over ``iters``, under a linear warm-up.

    At 0-based step ``i``: ``poly = (lr - min_lr) * (1 - progress(i)) ** power + min_lr``
    with ``progress(i) = i / iters`` (mmseg's PolyLrUpdaterHook); during warm-up
    (``i < warmup_iters``) that is multiplied by
    ``1 - (1 - i / warmup_iters) * (1 - warmup_ratio)``, rising from ``warmup_ratio``.
    The rate is a function of the step alone, so resuming needs only the iteration.

    A run resumed with another ``iters`` keeps the progress it has made: the schedule is
    re-anchored at that step (:meth:`rebased`), and progress then grows linearly from
    ``anchor_progress`` at ``anchor_step`` to 1 at the new ``iters``, so the rate goes on
    from where it was instead of jumping to ``i / new_iters``.
    """

    lr: float
    iters: int
    power: float = 0.9
    min_lr: float = 1e-4
    warmup_iters: int = 0
    warmup_ratio: float = 0.01
    anchor_step: int = 0
    anchor_progress: float = 0.0

    @classmethod
    def from_config(
        cls,
        settings: OptimConfig,
        *,
        iters: int,
        anchor_step: int = 0,
        anchor_progress: float = 0.0,
    ) -> PolySchedule:
        return cls(
            lr=settings.lr,
            iters=iters,
            power=settings.power,
            min_lr=settings.min_lr,
            warmup_iters=settings.warmup_iters,
            warmup_ratio=settings.warmup_ratio,
            anchor_step=anchor_step,
            anchor_progress=anchor_progress,
        )

    def progress(self, step: int) -> float:
        """How far the poly decay is at ``step``, in [0, 1]."""
        if step >= self.iters:
            return 1.0
        left = 1.0 - self.anchor_progress
        return self.anchor_progress + left * (step - self.anchor_step) / (
            self.iters - self.anchor_step
        )

    def rebased(self, *, iters: int, at: int) -> PolySchedule:
        """This schedule from step ``at`` on, stretched or shrunk to end at ``iters``."""
        return dataclasses.replace(
            self, iters=iters, anchor_step=at, anchor_progress=self.progress(at)
        )

    def state(self) -> dict[str, int | float]:
        """The length and anchor a training checkpoint keeps (``from_config``'s keywords)."""
        return {
            "iters": self.iters,
            "anchor_step": self.anchor_step,
            "anchor_progress": self.anchor_progress,
        }

    def __call__(self, step: int) -> float:
        rate = (self.lr - self.min_lr) * (1.0 - self.progress(step)) ** self.power + self.min_lr
        if step < self.warmup_iters:
            rate *= 1.0 - (1.0 - step / self.warmup_iters) * (1.0 - self.warmup_ratio)
        return rate

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's ``lr`` for ``step``; returns it."""
        rate = self(step)
        for group in optimizer.param_groups:
            group["lr"] = rate
        return rate
