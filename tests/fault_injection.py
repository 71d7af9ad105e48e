"""Make the N-th matching call of a function fail: SIGKILL the process, or raise.

As a script it runs ``nrdseg`` in this process and kills it at the chosen call::

    python fault_injection.py TARGET WHEN N PATTERN -- train CONFIG --work-dir DIR ...

``TARGET`` names a function in ``TARGETS``; the process kills itself with SIGKILL (no
clean-up, no ``finally``, no flushing: a power cut or the OOM killer) ``before`` or
``after`` the ``N``-th call whose string or path arguments match the regular expression
``PATTERN`` (searched, so ``""`` matches every call). The library holds no test hooks:
functions are wrapped from the outside, here; in-process tests use :func:`fail_nth_call`.
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

#: Name -> (module or ``module:Class``, attribute): the functions the script may interrupt.
TARGETS = {
    "loss": ("nrdseg.models.segmentor:Segmentor", "loss"),
    "infer_logits": ("nrdseg.evaluation.evaluate", "infer_logits"),
    "save_file": ("nrdseg.checkpoint.format", "save_file"),
    "atomic_write_bytes": ("nrdseg.checkpoint.work_dir", "atomic_write_bytes"),
    "replace": ("os", "replace"),
    "unlink": ("os", "unlink"),
}


def _text(args: tuple, kwargs: dict) -> str:
    """The string and path arguments of a call, joined by spaces: what PATTERN is matched to."""
    values = [*args, *kwargs.values()]
    return " ".join(os.fspath(v) for v in values if isinstance(v, (str, os.PathLike)))


def fail_nth_call(
    function: Callable[..., Any],
    *,
    nth: int,
    pattern: str = "",
    when: str = "before",
    action: Callable[[], None],
) -> Callable[..., Any]:
    """``function``, except that ``action()`` runs before or after its ``nth`` matching call."""
    if when not in ("before", "after"):
        raise ValueError(f"when must be 'before' or 'after', got {when!r}")
    matches = re.compile(pattern)
    count = 0

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        hit = bool(matches.search(_text(args, kwargs)))
        count += hit
        if hit and count == nth and when == "before":
            action()
        result = function(*args, **kwargs)
        if hit and count == nth:
            action()
        return result

    return wrapper


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    split = argv.index("--")
    target, when, nth, pattern = argv[:split]
    if target not in TARGETS:
        raise SystemExit(f"usage: TARGET ({', '.join(TARGETS)}) before|after N PATTERN -- ARGS")
    where, name = TARGETS[target]
    module, _, cls = where.partition(":")
    owner = importlib.import_module(module)
    owner = getattr(owner, cls) if cls else owner
    wrapped = fail_nth_call(
        getattr(owner, name), nth=int(nth), pattern=pattern, when=when, action=_kill
    )
    setattr(owner, name, wrapped)
    from nrdseg.cli import main as nrdseg_main

    return nrdseg_main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
