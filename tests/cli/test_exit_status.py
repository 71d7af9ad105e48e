"""Every command's exit status says how it went (issue 21, item 7: ``nrdseg predict`` exited
0 when every input failed): 0 done, 1 failed, 2 usage or input error, 3 done in part."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from nrdseg.cli import build_parser, main
from nrdseg.cli import export as export_cli
from nrdseg.cli.status import EXIT_STATUS
from nrdseg.deploy.verify import ParityReport, ParityRow
from tests.conftest import CPU
from tests.datasets_on_disk import SIZE, write_image, write_mask
from tests.engine_fixtures import tiny_model, write_tiny_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_model().save_pretrained(tmp_path_factory.mktemp("status") / "ckpt")


def test_predict_exits_1_when_every_input_failed(checkpoint, tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "b.jpg").write_text("not an image")
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path), "--out", str(tmp_path / "out")]
    assert main([*argv, "--no-progress"]) == 1  # was 0
    captured = capsys.readouterr()
    assert "wrote 0 label PNGs" in captured.out and "skipped 2 unreadable input(s):" in captured.out
    assert "nrdseg predict: nothing written: all 2 input(s) failed" in captured.err


def _val_set(root, *, broken: int):
    """Three samples of class 0, ``broken`` of them unreadable images."""
    for i, stem in enumerate("abc"):
        write_image(root / "images" / f"{stem}.png", seed=i)
        write_mask(root / "masks" / f"{stem}.png", np.zeros(SIZE))
    for stem in "abc"[:broken]:
        (root / "images" / f"{stem}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


@pytest.mark.parametrize(("broken", "status"), [(1, 3), (3, 1)])
def test_eval_exits_3_when_samples_were_left_out_and_1_when_none_was_read(
    checkpoint, tmp_path, capsys, broken, status
):
    root = _val_set(tmp_path / "val", broken=broken)
    config = write_tiny_config(tmp_path / "tiny.yaml")
    val = (
        f"{{name: folder, root: {root}, split: null, options: {{num_classes: 3, on_error: skip}}}}"
    )
    argv = ["eval", *CPU, str(config), "--checkpoint", str(checkpoint), "--no-progress"]
    assert main([*argv, "--set", f"data.val={val}", "--set", "eval.max_samples=null"]) == status
    captured = capsys.readouterr()
    assert f"left out {broken} unreadable sample(s)" in captured.out
    if status == 1:
        assert "nrdseg eval: no sample scored: 3 asked for, 3 unreadable" in captured.err


def test_export_exits_1_when_verify_finds_a_mismatch(checkpoint, tmp_path, monkeypatch, capsys):
    # The comparison itself is tested in tests/deploy/test_export.py; here, its verdict.
    row = ParityRow(shape=(1, 32, 32), max_abs_logit=9.0, max_abs_diff=0.5, agreeing=9, pixels=10)
    failing = ParityReport(rows=[row], atol=1e-4, min_agreement=0.9999)
    monkeypatch.setattr(export_cli, "verify_export", lambda *args, **kwargs: failing)
    argv = ["export", str(checkpoint), "--format", "torchscript", "--size", "32", "32"]
    assert main([*argv, "--out", str(tmp_path / "m.pt"), "--verify"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "n.pt"), "--atol", "-1"]) == 2
    assert "--atol must be >= 0, got -1.0" in capsys.readouterr().err
    assert not (tmp_path / "n.pt").exists()


@pytest.mark.parametrize("command", [["demo", "--quick"], ["study", "decoders", "--quick"]])
def test_a_missing_root_is_a_usage_error(command, tmp_path, capsys):
    argv = [*command, *CPU, "--data", "camvid", "--out", str(tmp_path / "o")]
    assert main(argv) == 2  # was SystemExit with status 1, as if the run had failed
    assert "error: --data camvid needs --root DIR" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _parsers(parser: argparse.ArgumentParser, name: str = "nrdseg"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                yield from _parsers(child, f"{name} {child_name}")


def test_every_command_says_what_its_exit_statuses_mean(capsys):
    seen = []
    for name, parser in _parsers(build_parser()):
        assert parser.epilog == EXIT_STATUS, name
        seen.append(name)
    assert {"nrdseg predict", "nrdseg eval", "nrdseg data check", "nrdseg export"} <= set(seen)
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 done" in shown and "3 done in part" in shown
