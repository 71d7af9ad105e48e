"""Run ``nrdseg`` in this process and SIGKILL it at a chosen call of one function.

    python kill_driver.py TARGET WHEN N PATTERN -- train CONFIG --work-dir DIR ...

``TARGET`` names a function in ``TARGETS``; the process kills itself (SIGKILL: no clean-up,
no ``finally``, no flushing, as when a machine loses power or the OOM killer strikes)
``before`` or ``after`` the ``N``-th call whose string or path arguments match the regular
expression ``PATTERN`` (searched, so ``""`` matches every call). The library itself holds
no test hooks: the functions are wrapped from the outside, here.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

#: Name -> (module or class path, attribute): the functions a test may interrupt.
TARGETS = {
    "loss": ("nrdseg.models.segmentor:Segmentor", "loss"),
    "infer_logits": ("nrdseg.engine.evaluate", "infer_logits"),
    "save_file": ("nrdseg.checkpoint", "save_file"),
    "atomic_write_bytes": ("nrdseg.engine.checkpointing", "atomic_write_bytes"),
    "replace": ("os", "replace"),
    "unlink": ("os", "unlink"),
}


def _owner(path: str) -> Any:
    module, _, cls = path.partition(":")
    owner = importlib.import_module(module)
    return getattr(owner, cls) if cls else owner


def _text(args: tuple, kwargs: dict) -> str:
    """The string and path arguments of a call, joined by spaces: what PATTERN is matched to."""
    values = [*args, *kwargs.values()]
    return " ".join(os.fspath(v) for v in values if isinstance(v, (str, os.PathLike)))


def arm(target: str, *, when: str, nth: int, pattern: str) -> None:
    """Wrap ``TARGETS[target]`` so that its ``nth`` matching call kills this process."""
    owner, name = _owner(TARGETS[target][0]), TARGETS[target][1]
    original: Callable[..., Any] = getattr(owner, name)
    matches = re.compile(pattern)
    count = 0

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        hit = bool(matches.search(_text(args, kwargs)))
        count += hit
        if hit and count == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if hit and count == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


def main(argv: list[str]) -> int:
    split = argv.index("--")
    target, when, nth, pattern = argv[:split]
    if target not in TARGETS or when not in ("before", "after"):
        raise SystemExit(f"usage: TARGET ({', '.join(TARGETS)}) before|after N PATTERN -- ARGS")
    arm(target, when=when, nth=int(nth), pattern=pattern)
    from nrdseg.cli import main as nrdseg_main

    return nrdseg_main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
