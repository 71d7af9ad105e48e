"""The options several commands share, declared once in ``nrdseg.cli.options``."""

from __future__ import annotations

import pytest

from nrdseg.cli import build_parser, main
from nrdseg.cli.options import speed_from_args
from nrdseg.evaluation.evaluate import InferenceSpeed
from tests.conftest import CPU


def _args(*argv: str):
    return build_parser(argv).parse_args(argv)


def test_the_speed_flags_become_one_inference_speed():
    args = _args("predict", "ckpt", "a.png", "--out", "o", "--workers", "3", "--amp", "bf16")
    assert speed_from_args(args) == InferenceSpeed(workers=3, amp="bf16", channels_last=None)
    args = _args("eval", "--checkpoint", "ckpt", "--compile")
    assert speed_from_args(args) == InferenceSpeed(workers=2, compile=True)  # --workers 2


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "c.yaml"],
        ["eval", "--checkpoint", "ckpt"],
        ["predict", "ckpt", "a.png", "--out", "o"],
    ],
)
def test_device_and_no_progress_read_alike_in_every_command(argv):
    args = _args(*argv, "--device", "cuda:1", "--no-progress")
    assert (args.device, args.no_progress) == ("cuda:1", True)
    unset = _args(*argv)
    assert (unset.device, unset.no_progress) == (None, False)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "c.yaml"],
        ["eval", "--checkpoint", "ckpt"],
        ["flops", "nrd_r50", "--num-classes", "2"],
        ["data", "check", "synthetic"],
    ],
)
def test_set_is_a_list_of_assignments_in_every_command(argv):
    assert _args(*argv, "--set", "a=1", "--set", "b=[1, 2]").set == ["a=1", "b=[1, 2]"]
    assert _args(*argv).set is None


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_a_negative_worker_count_is_a_usage_error_naming_it(command, tmp_path, capsys):
    where = (
        ["missing_ckpt", "a.png", "--out", "o"] if command == "predict" else ["--checkpoint", "x"]
    )
    assert main([command, *CPU, *where, "--workers", "-1"]) == 2
    assert "workers must be >= 0" in capsys.readouterr().err  # before any file is read
