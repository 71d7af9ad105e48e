"""metrics.jsonl lines, and TensorBoard scalars when the package is installed."""

from __future__ import annotations

import json
import math

import pytest

from nrdseg.engine.event_log import EventLog


def test_events_are_json_lines_appended_across_runs(tmp_path):
    for loss in (1.5, math.nan):
        log = EventLog(work_dir=tmp_path, console=False)
        log.write({"event": "train", "iter": 1, "loss": loss, "IoU": {"a": math.inf}})
        log.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [
        {"event": "train", "iter": 1, "loss": 1.5, "IoU": {"a": None}},
        {"event": "train", "iter": 1, "loss": None, "IoU": {"a": None}},
    ]


def test_console_lines_summarise_scalars(tmp_path, capsys):
    log = EventLog(work_dir=tmp_path, console=True)
    log.write({"event": "eval", "iter": 8, "mIoU": 0.123456, "IoU": {"a": 0.1}, "path": "x"})
    log.close()
    assert capsys.readouterr().out.strip() == "eval iter 8  mIoU 0.1235  path x  IoU a 0.1"


def test_the_eval_line_shows_per_class_iou_and_the_file_keeps_every_digit(tmp_path, capsys):
    event = {
        "event": "eval",
        "iter": 4,
        "mIoU": 0.5,
        "IoU": {"road": 0.912345, "sky": 0.087654, "pole": None},
        "trimap": {"3": 0.25},
        "skipped": ["a.png: unreadable"],
    }
    log = EventLog(work_dir=tmp_path, console=True)
    log.write(event)
    log.close()
    assert capsys.readouterr().out.strip() == (
        "eval iter 4  mIoU 0.5  IoU road 0.912, sky 0.0877, pole -  trimap 3 0.25"
    )
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == event


def test_scalars_reach_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = EventLog(work_dir=tmp_path, console=False)
    for step, loss in ((1, 2.0), (2, 1.0)):
        log.write({"event": "train", "iter": step, "loss": loss, "path": "ignored"})
    log.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert events.Tags()["scalars"] == ["train/loss"]
    assert [(s.step, s.value) for s in events.Scalars("train/loss")] == [(1, 2.0), (2, 1.0)]
