"""The ``loss`` config section through build_model, create_model and checkpoints."""

from __future__ import annotations

import sys

import pytest
import torch

from nrdseg.config.run import config_from_dict
from nrdseg.config.schema import ConfigError
from nrdseg.engine.build import build_model
from nrdseg.models.load import load_model
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
        (
            {"decode": [{"type": "dice", "class_weight": "median"}]},
            r"loss\.decode\[0\]\.class_weight: expected a list of float or null or "
            r"'median_frequency', got 'median' \(a YAML string\)",
        ),
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


def test_median_frequency_is_counted_on_the_training_masks(caplog):
    import numpy as np

    from nrdseg.data import build_dataset

    tree = _config(decode=[{"type": "cross_entropy", "class_weight": "median_frequency"}])
    tree["data"]["label_stats_samples"] = 0  # every mask
    config = config_from_dict(tree)
    train_set = build_dataset("synthetic", size=(32, 32), length=4)
    caplog.set_level("INFO", logger="nrdseg.train")
    model = build_model(config, num_classes=train_set.num_classes, train_set=train_set)
    counts = sum(
        np.bincount(np.asarray(train_set.load_label(i)).ravel(), minlength=256)
        for i in range(len(train_set))
    )[: train_set.num_classes]
    share = counts / counts.sum()
    present = share > 0
    expected = np.where(present, np.median(share[present]) / np.where(present, share, 1), 0.0)
    expected[~present] = expected[present].max()
    given = model.config["loss_decode"][0]["class_weight"]
    assert given == pytest.approx(expected.tolist())
    assert "median frequency class weights over 4 training masks" in caplog.text
    assert torch.equal(model.decode_loss.terms[0].class_weight, torch.tensor(given))


def test_training_logs_each_loss_term(tmp_path):
    from tests.engine_fixtures import events, make_trainer, tiny_model

    model = tiny_model(
        loss_decode=[{"type": "cross_entropy"}, {"type": "lovasz", "loss_weight": 0.5}],
        sampler={"thresh": 0.9, "min_kept": 100},
    )
    make_trainer(tmp_path, model=model, iters=2).train()
    logged = events(tmp_path, "train")[-1]
    assert {"loss_ce", "loss_lovasz", "loss_main", "loss_aux", "loss"} <= set(logged)
    assert logged["loss_main"] == pytest.approx(logged["loss_ce"] + logged["loss_lovasz"])
