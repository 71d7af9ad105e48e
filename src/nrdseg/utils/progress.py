"""Progress reports: a tqdm bar on a terminal, plain periodic lines in a redirected log.

tqdm redraws its bar with carriage returns; in a file (``nrdseg train ... > log 2>&1``)
every redraw stays, and log lines written between redraws end up glued to bar fragments.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm.auto import tqdm

#: Seconds between two plain progress lines.
LINE_INTERVAL = 30.0


class PlainProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` / iteration, as one line per
    ``interval`` seconds (and one at the end): ``train 120/500 (24%) 1.31 it/s loss=0.41``."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        initial: int = 0,
        desc: str = "",
        unit: str = "it",
        stream: TextIO | None = None,
        interval: float = LINE_INTERVAL,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable = iterable
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.stream = stream or sys.stderr
        self.interval = interval
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._start_n = initial
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print(now)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        if self.total:
            done += f" ({self.n / self.total:.0%})"
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        parts = [self.desc, done, f"{rate:.3g} {self.unit}/s", self.postfix]
        print(" ".join(p for p in parts if p), file=self.stream, flush=True)


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    initial: int = 0,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    stream: TextIO | None = None,
) -> Any:
    """A tqdm bar when ``stream`` (default stderr) is a terminal, :class:`PlainProgress`
    lines when it is redirected, nothing (a disabled tqdm) when not ``enabled``."""
    stream = stream or sys.stderr
    if enabled and not _is_terminal(stream):
        return PlainProgress(
            iterable, total=total, initial=initial, desc=desc, unit=unit, stream=stream
        )
    return tqdm(
        iterable,
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        disable=not enabled,
        file=stream,
    )


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
