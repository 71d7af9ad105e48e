"""The ``loss`` config section through build_model, create_model and checkpoints."""

from __future__ import annotations

import sys

import pytest
import torch

from nrdseg.checkpoint import load_model
from nrdseg.engine.build import build_model
from nrdseg.engine.config import config_from_dict
from nrdseg.engine.schema import ConfigError
from tests.conftest import tiny_options


def _config(**loss) -> dict:
    return {
        "data": {"train": {"name": "synthetic"}},
        "model": {"name": "nrd_r50", "options": tiny_options("nrd_r50")},
        "loss": loss,
    }


def test_loss_section_reaches_the_model_and_its_checkpoint(tmp_path, monkeypatch):
    config = config_from_dict(
        _config(
            decode=[
                {"type": "cross_entropy", "class_weight": [1.0, 2.0, 3.0]},
                {"type": "dice", "loss_weight": 0.5},
            ],
            sampler={"thresh": 0.7, "min_kept": 50},
        )
    )
    model = build_model(config, num_classes=3)
    assert model.config["loss_decode"][1] == {"type": "dice", "loss_weight": 0.5}
    assert model.config["sampler"] == {"type": "ohem", "thresh": 0.7, "min_kept": 50}
    model.train()
    images, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    losses = model.loss(images, labels)
    assert set(losses) == {"loss", "loss_main", "loss_aux", "loss_ce", "loss_dice"}
    expected = losses["loss_ce"] + losses["loss_dice"]
    assert losses["loss_main"].item() == pytest.approx(expected.item())
    model.save_pretrained(tmp_path / "ckpt")
    # a model trained with Dice loads for inference without the losses extra
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch.losses", None)
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert len(loaded.decode_loss.terms) == 1  # the loss is training's, not saved


def test_default_loss_leaves_the_model_config_alone():
    config = config_from_dict(_config())
    model = build_model(config, num_classes=3)
    assert "loss_decode" not in model.config and "sampler" not in model.config


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"decode": [{"type": "focal", "gama": 2}]}, r"loss\.decode\[0\]\.gama: unknown option"),
        ({"decode": [{"type": "tversky"}]}, r"loss\.decode\[0\]\.type: unknown loss 'tversky'"),
        ({"sampler": {"thresh": 0}}, r"loss\.sampler\.thresh: must be in"),
        ({"sampler": {"min_kep": 5}}, r"loss\.sampler\.min_kep: unknown key"),
        ({"decode": [{"type": "dice", "class_weight": "median"}]}, r"loss\.decode\[0\]"),
    ],
)
def test_bad_loss_config_names_the_key(loss, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_config(**loss))


def test_missing_extra_fails_at_config_time(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch.losses", None)
    with pytest.raises(ConfigError, match=r"loss\.decode\[0\]: .*nrdseg\[losses\]"):
        config_from_dict(_config(decode=[{"type": "lovasz"}]))


def test_loss_in_model_options_is_refused():
    tree = _config()
    tree["model"]["options"]["loss_decode"] = [{"type": "dice"}]
    with pytest.raises(ConfigError, match="model.options.loss_decode: set the loss in the loss"):
        build_model(config_from_dict(tree), num_classes=3)
