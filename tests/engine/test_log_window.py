"""The train event's bookkeeping (``engine.log_window.LogWindow``), on a clock the test sets."""

from __future__ import annotations

import pytest

from nrdseg.engine.log_window import LogWindow


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _batches(clock: Clock, waits: list[float]):
    """Batches 0, 1, ...; reading batch i takes ``waits[i]`` seconds."""
    for index, wait in enumerate(waits):
        clock.now += wait
        yield index


def test_the_event_averages_the_terms_and_times_the_iterations():
    clock = Clock()
    window = LogWindow(clock=clock)
    for loss in (1.0, 2.0, 6.0):
        clock.now += 0.5
        window.add({"loss": loss, "grad_norm": 2 * loss})
    event = window.event(iteration=3, lr=0.01, remaining=120)
    assert event == {
        "event": "train",
        "iter": 3,
        "lr": 0.01,
        "loss": 3.0,
        "grad_norm": 6.0,
        "time_per_iter": 0.5,
        "data_time": 0.0,
        "eta_min": 1.0,  # 120 iterations x 0.5 s
    }


def test_paused_time_counts_in_no_iteration():
    clock = Clock()
    window = LogWindow(clock=clock)
    clock.now += 1.0
    window.add({"loss": 1.0})
    with window.paused():  # an evaluation and a checkpoint: 30 s
        clock.now += 30.0
    clock.now += 1.0
    window.add({"loss": 1.0})
    event = window.event(iteration=2, lr=0.1, remaining=60)
    assert event["time_per_iter"] == 1.0  # not (1 + 30 + 1) / 2
    assert event["eta_min"] == 1.0


def test_a_pause_ended_by_an_error_is_still_left_out():
    clock = Clock()
    window = LogWindow(clock=clock)
    with pytest.raises(OSError), window.paused():
        clock.now += 10.0
        raise OSError("disk full")
    clock.now += 2.0
    window.add({"loss": 0.0})
    assert window.event(iteration=1, lr=0.1, remaining=0)["time_per_iter"] == 2.0


def test_waits_for_batches_are_data_time_inside_the_iteration_time():
    clock = Clock()
    window = LogWindow(clock=clock)
    batches = window.timed(_batches(clock, [0.25, 0.75]))
    for _ in range(2):
        next(batches)
        clock.now += 1.0  # forward, backward, step
        window.add({"loss": 1.0})
    event = window.event(iteration=2, lr=0.1, remaining=0)
    assert event["data_time"] == 0.5  # (0.25 + 0.75) / 2
    assert event["time_per_iter"] == 1.5  # the waits included
    assert list(batches) == []  # the source ran out: so does the timed one


def test_a_skipped_batch_adds_its_time_and_wait_but_no_iteration():
    clock = Clock()
    window = LogWindow(clock=clock)
    batches = window.timed(_batches(clock, [1.0, 1.0]))
    next(batches)
    clock.now += 1.0  # a bad batch: no add()
    next(batches)
    clock.now += 1.0
    window.add({"loss": 4.0})
    event = window.event(iteration=1, lr=0.1, remaining=0)
    assert (event["loss"], event["time_per_iter"], event["data_time"]) == (4.0, 4.0, 2.0)


def test_each_event_opens_a_new_window():
    clock = Clock()
    window = LogWindow(clock=clock)
    batches = window.timed(_batches(clock, [3.0, 0.0]))
    next(batches)
    window.add({"loss": 10.0, "loss_aux": 1.0})
    window.event(iteration=1, lr=0.1, remaining=1)
    next(batches)
    clock.now += 2.0
    window.add({"loss": 2.0})
    event = window.event(iteration=2, lr=0.1, remaining=0)
    assert (event["loss"], event["time_per_iter"], event["data_time"]) == (2.0, 2.0, 0.0)
    assert "loss_aux" not in event  # terms of the last window only


def test_an_event_without_an_iteration_is_refused():
    window = LogWindow(clock=Clock())
    with pytest.raises(ValueError, match="no iteration since the last train event"):
        window.event(iteration=0, lr=0.1, remaining=10)
