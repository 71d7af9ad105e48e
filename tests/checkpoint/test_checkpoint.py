"""Checkpoint directories: round trip, atomic writes, safe loading, clear mismatch reports."""

from __future__ import annotations

import pytest
import torch
import yaml

import nrdseg
from nrdseg.checkpoint.format import CONFIG_FILE, WEIGHTS_FILE
from nrdseg.utils.atomic import atomic_directory
from tests.conftest import tiny_options


def _model(name: str = "nrd_r50", classes: int = 4) -> nrdseg.Segmentor:
    model = nrdseg.create_model(name, num_classes=classes, **tiny_options(name))
    model.meta = {
        "classes": [f"c{i}" for i in range(classes)],
        "palette": [[i, i, i] for i in range(classes)],
    }
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = nrdseg.load_model(tmp_path / "ckpt")
    assert loaded.config == model.config and loaded.meta == model.meta
    x = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not loaded.training


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    first, second = _model(), _model()
    first.save_pretrained(tmp_path / "ckpt")
    second.save_pretrained(tmp_path / "ckpt")
    loaded = nrdseg.load_model(tmp_path / "ckpt")
    key = "decoder.controller.1.weight"
    assert torch.equal(loaded.state_dict()[key], second.state_dict()[key])
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary leftovers


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "ckpt")
    before = (tmp_path / "ckpt" / WEIGHTS_FILE).read_bytes()
    with pytest.raises(OSError, match="disk full"), atomic_directory(tmp_path / "ckpt") as tmp:
        (tmp / WEIGHTS_FILE).write_bytes(b"partial")
        raise OSError("disk full")
    assert (tmp_path / "ckpt" / WEIGHTS_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_checkpoint_for_other_classes_is_explained(tmp_path):
    _model(classes=4).save_pretrained(tmp_path / "ckpt")
    config = yaml.safe_load((tmp_path / "ckpt" / CONFIG_FILE).read_text())
    config["model"]["num_classes"] = 7
    (tmp_path / "ckpt" / CONFIG_FILE).write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"7 classes:[\s\S]*shape mismatch: .*classifier"):
        nrdseg.load_model(tmp_path / "ckpt")


def test_checkpoint_of_another_architecture_is_explained(tmp_path):
    _model("bilinear_r50").save_pretrained(tmp_path / "ckpt")
    config = yaml.safe_load((tmp_path / "ckpt" / CONFIG_FILE).read_text())
    config["model"]["name"] = "nrd_r50"
    config["model"]["controller_channels"] = 32
    (tmp_path / "ckpt" / CONFIG_FILE).write_text(yaml.safe_dump(config))
    with pytest.raises(
        ValueError, match=r"missing: decoder\.controller[\s\S]*unexpected: decoder\.classifier"
    ):
        nrdseg.load_model(tmp_path / "ckpt")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        nrdseg.load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        nrdseg.load_model(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CONFIG_FILE).write_text("format: something-else\n")
    with pytest.raises(ValueError, match="expected format"):
        nrdseg.load_model(tmp_path / "bad")


def test_config_with_python_tags_is_not_executed(tmp_path):
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / CONFIG_FILE).write_text(
        "!!python/object/apply:os.system ['touch pwned']\n"
    )
    with pytest.raises(ValueError, match="not valid YAML"):
        nrdseg.load_model(tmp_path / "evil")
