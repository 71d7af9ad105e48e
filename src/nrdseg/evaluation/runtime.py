"""Inference at device speed: autocast, channels-last memory and torch.compile with a fallback.

Shared by ``nrdseg predict``, ``nrdseg eval`` and ``benchmarks/bench_gpu.py`` so that the
numbers a benchmark prints are the ones the commands reach.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

#: ``--amp`` choices for inference; fp16 is left out (bf16 needs no loss scaling and keeps
#: fp32's range, so logits cannot overflow).
INFERENCE_AMP = ("none", "bf16")


def autocast(device: torch.device | str, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 for ``amp="bf16"``, a no-op for ``"none"``."""
    if amp not in INFERENCE_AMP:
        raise ValueError(f"amp must be one of {INFERENCE_AMP}, got {amp!r}")
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def memory_format(device: torch.device | str, channels_last: bool | None) -> torch.memory_format:
    """channels-last when asked for, or by default (``None``) on CUDA, where cuDNN's
    convolutions run faster on it; NCHW otherwise."""
    if channels_last is None:
        channels_last = torch.device(device).type == "cuda"
    return torch.channels_last if channels_last else torch.contiguous_format


def pin_memory(device: torch.device | str) -> bool:
    """Page-locked host batches (copied with ``non_blocking=True``) pay off on CUDA only."""
    return torch.device(device).type == "cuda"


class CompiledOrEager:
    """``torch.compile(fn)`` that falls back to ``fn`` when compiling fails.

    Compilation happens at the first call (and again for each new input shape), so the
    first call is where it fails: on Python versions dynamo does not support, without a
    C++ compiler for inductor's CPU code, or for an operation the backend cannot trace.
    Then a warning names the reason and every later call runs ``fn`` eagerly. An error the
    eager ``fn`` raises too (bad input) propagates unchanged.
    """

    def __init__(self, fn: Callable[..., Any], *, backend: str = "inductor") -> None:
        self.fn = fn
        self.backend = backend
        self.compiled: Callable[..., Any] | None
        self.fallback_reason: str | None = None
        self._tried = False
        try:
            self.compiled = torch.compile(fn, backend=backend)
        except Exception as err:  # e.g. "Dynamo is not supported on Python 3.x"
            self.compiled = None
            self._fall_back(err)

    def _fall_back(self, err: Exception) -> None:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        self.fallback_reason = f"{type(err).__name__}: {first_line}"
        warnings.warn(
            f"--compile: torch.compile (backend {self.backend!r}) cannot be used here "
            f"({self.fallback_reason}); running the model eagerly, at eager speed",
            RuntimeWarning,
            stacklevel=3,
        )

    @property
    def training(self) -> bool:
        """The wrapped module's mode, so that callers may switch it (``infer_logits``)."""
        return bool(getattr(self.fn, "training", False))

    def train(self, mode: bool = True) -> CompiledOrEager:
        self.fn.train(mode)  # type: ignore[attr-defined]
        return self

    def eval(self) -> CompiledOrEager:
        return self.train(False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.fn(*args, **kwargs)
        if self._tried:
            return self.compiled(*args, **kwargs)
        self._tried = True
        try:
            return self.compiled(*args, **kwargs)
        except Exception as err:
            result = self.fn(*args, **kwargs)  # raises itself when the input is at fault
            self.compiled = None
            self._fall_back(err)
            return result


def prepare_model(
    model: nn.Module, device: torch.device | str, *, channels_last: bool | None = None
) -> nn.Module:
    """``model`` on ``device`` in eval mode, its weights in the :func:`memory_format`."""
    return model.to(device).eval().to(memory_format=memory_format(device, channels_last))


def to_device(
    images: torch.Tensor, device: torch.device | str, *, channels_last: bool | None = None
) -> torch.Tensor:
    """A (pinned) host batch on ``device`` without waiting for the copy, in the format the
    model was prepared with (see :func:`prepare_model`)."""
    moved = images.to(device, non_blocking=True)
    if moved.ndim == 4:
        moved = moved.contiguous(memory_format=memory_format(device, channels_last))
    return moved
