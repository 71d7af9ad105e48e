"""Checkpoint files that cannot be read are named with what is wrong (issue 21, item 4's
review of the other error translations)."""

from __future__ import annotations

import os
import pickle

import pytest

import nrdseg
from nrdseg.checkpoint.format import CONFIG_FILE, WEIGHTS_FILE
from nrdseg.checkpoint.weights import read_state_dict
from nrdseg.cli import main
from tests.conftest import CPU
from tests.tiny_checkpoints import tiny_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_model().save_pretrained(tmp_path_factory.mktemp("errors") / "ckpt")


def test_a_damaged_safetensors_file_is_named(checkpoint, tmp_path, capsys):
    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / CONFIG_FILE).write_bytes((checkpoint / CONFIG_FILE).read_bytes())
    (broken / WEIGHTS_FILE).write_bytes((checkpoint / WEIGHTS_FILE).read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"{WEIGHTS_FILE}: cannot read as safetensors \("):
        nrdseg.load_model(broken)  # was safetensors' "header too large", naming no file
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert main(["predict", *CPU, str(broken), str(image), "--out", str(tmp_path / "o")]) == 2
    assert "the file is damaged or truncated, or not a safetensors file" in capsys.readouterr().err


class _Runs:
    def __reduce__(self):
        return (os.getcwd, ())


def test_a_weights_file_holding_code_is_refused_without_the_advice_to_run_it(tmp_path):
    path = tmp_path / "backbone.pth"
    path.write_bytes(pickle.dumps({"w": _Runs()}))
    with pytest.raises(ValueError) as caught:
        read_state_dict(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: refused, not a weights file of tensors and plain")
    assert "nothing in it was run" in message
    assert "weights_only` set to `False`" not in message  # torch's advice, which would run it
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"cannot read \S+backbone\.pth: not a weights file "):
        read_state_dict(path)  # was "cannot read checkpoint ...: 101" (a KeyError's text)


def test_a_binary_model_record_is_named(checkpoint, tmp_path):
    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / CONFIG_FILE).write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (broken / WEIGHTS_FILE).write_bytes((checkpoint / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ValueError, match=rf"{CONFIG_FILE}: not a text \(YAML\) file"):
        nrdseg.load_model(broken)  # was the codec's message alone
