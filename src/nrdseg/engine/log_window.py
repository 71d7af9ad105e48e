"""The bookkeeping behind each ``train`` event: loss averages and seconds per iteration.

A window opens at the start of training and after each event; it sums the loss terms of
the iterations it sees and times them, leaving out what :meth:`LogWindow.paused` brackets
(evaluation, checkpoints), so that ``time_per_iter`` and the ETA count training alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

Item = TypeVar("Item")


class LogWindow:
    """Loss terms and timings of the iterations since the last ``train`` event.

    ``clock`` returns seconds (default: :func:`time.perf_counter` as the window finds it
    when made, so that a test's fake clock reaches it). :meth:`timed` counts
    the waits for batches as ``data_time`` (mmseg's: the part of an iteration spent
    waiting for data, still inside ``time_per_iter``); a batch read for an iteration that
    is then skipped (a bad batch) adds its wait and its time but no iteration.
    """

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.perf_counter
        self._open()

    def _open(self) -> None:
        self._sums: dict[str, float] = {}
        self._iterations = 0
        self._start = self._clock()
        self._data_seconds = 0.0

    def timed(self, batches: Iterator[Item]) -> Iterator[Item]:
        """The items of ``batches``, the wait for each one counted as data time."""
        while True:
            start = self._clock()
            try:
                item = next(batches)
            except StopIteration:
                return
            self._data_seconds += self._clock() - start
            yield item

    def add(self, terms: Mapping[str, float]) -> None:
        """One finished iteration and its loss terms (name -> value, averaged per event)."""
        self._iterations += 1
        for key, value in terms.items():
            self._sums[key] = self._sums.get(key, 0.0) + value

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The time spent in this block counts in no iteration of the window."""
        start = self._clock()
        try:
            yield
        finally:
            self._start += self._clock() - start

    def event(self, *, iteration: int, lr: float, remaining: int) -> dict[str, Any]:
        """The ``train`` event of this window, after which a new one opens.

        ``iteration``: the last one done; ``lr``: its learning rate; ``remaining``:
        iterations left, for ``eta_min`` (minutes at this window's ``time_per_iter``,
        in seconds). ValueError when no iteration was added since the last event.
        """
        if self._iterations == 0:
            raise ValueError("no iteration since the last train event: nothing to average")
        count = self._iterations
        seconds = (self._clock() - self._start) / count
        event: dict[str, Any] = {"event": "train", "iter": iteration, "lr": lr}
        event.update({key: value / count for key, value in self._sums.items()})
        event["time_per_iter"] = seconds
        event["data_time"] = self._data_seconds / count
        event["eta_min"] = seconds * remaining / 60
        self._open()
        return event
