"""``InferenceSpeed``: the one object that carries predict's and eval's speed settings."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from nrdseg.evaluation.evaluate import PLAIN, InferenceSpeed


def test_the_defaults_are_the_plain_in_process_float32_eager_run():
    speed = InferenceSpeed()
    assert (speed.workers, speed.amp, speed.compile) == (0, "none", False)
    assert speed.channels_last is None  # channels-last on CUDA only
    assert InferenceSpeed(channels_last=False) == PLAIN  # keeps a training model's format


def test_it_is_frozen_and_keyword_only():
    speed = InferenceSpeed(workers=2, amp="bf16", channels_last=True, compile=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        speed.workers = 4
    with pytest.raises(TypeError):
        InferenceSpeed(2)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("workers", -1, "workers must be >= 0 (DataLoader processes; 0 reads in this process), got -1"),
        ("workers", 1.5, "workers must be >= 0 (DataLoader processes; 0 reads in this process), got 1.5"),
        ("workers", True, "workers must be >= 0 (DataLoader processes; 0 reads in this process), got True"),
        ("workers", "2", "workers must be >= 0 (DataLoader processes; 0 reads in this process), got '2'"),
        ("amp", "fp16", "amp must be one of ('none', 'bf16'), got 'fp16'"),
        ("amp", None, "amp must be one of ('none', 'bf16'), got None"),
        ("channels_last", 1, "channels_last must be True, False or None (channels-last on CUDA only), got 1"),
        ("channels_last", "yes", "channels_last must be True, False or None (channels-last on CUDA only), got 'yes'"),
        ("compile", 1, "compile must be True or False, got 1"),
        ("compile", None, "compile must be True or False, got None"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_its_field(field, value, message):
    with pytest.raises(ValueError) as refused:
        InferenceSpeed(**{field: value})
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("workers", "amp", "channels_last", "compile"),
    list(itertools.product((0, 1, 8), ("none", "bf16"), (True, False, None), (True, False))),
)
def test_every_allowed_value_is_taken(workers, amp, channels_last, compile):
    speed = InferenceSpeed(workers=workers, amp=amp, channels_last=channels_last, compile=compile)
    assert dataclasses.astuple(speed) == (workers, amp, channels_last, compile)
