"""Settings that would train on nothing, or that another part owns, refused when the config
loads (before a work dir or any data), each naming its key and the fix."""

from __future__ import annotations

import pytest

from nrdseg.cli import main
from nrdseg.config.run import load_config
from nrdseg.config.schema import ConfigError
from tests.conftest import CPU
from tests.engine_fixtures import write_tiny_config

CE = {"type": "cross_entropy"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # a loss that is identically 0
        (
            {"model.num_classes": 1, "loss.decode": [{**CE, "use_sigmoid": False}]},
            r"loss\.decode\[0\]\.use_sigmoid: false asks for a softmax over the one logit of "
            r"this binary \(num_classes: 1\) model; it is constant, so the loss would be 0",
        ),
        (
            {"loss.decode": [{**CE, "class_weight": [0, 0, 0, 0, 0, 0]}]},
            r"loss\.decode\[0\]: class_weight: every weight is 0",
        ),
        (
            {"loss.decode": [{**CE, "loss_weight": 0}, {"type": "dice", "loss_weight": 0.0}]},
            r"loss\.decode: every term has loss_weight 0, so the decode loss is 0",
        ),
        ({"loss.decode": []}, r"loss\.decode: needs at least one loss"),
        (
            {"loss.decode": [{**CE, "loss_weight": -1}]},
            r"loss\.decode\[0\]: loss_weight: expected a finite number >= 0",
        ),
        (
            {"loss.sampler": {"min_kept": 0}},
            r"loss\.sampler\.min_kept: 0 without a thresh keeps no pixel",
        ),
        (
            {"model.options.aux_weight": 0},
            r"model\.options\.aux_weight: 0 trains the auxiliary head on nothing.*aux: false",
        ),
        ({"model.options.aux_weight": -0.4}, r"model\.options\.aux_weight: expected a finite"),
        # a mode the model does not have, or class weights of another class count
        (
            {"loss.decode": [{**CE, "use_sigmoid": True}]},
            r"loss\.decode\[0\]\.use_sigmoid: true needs a one-logit binary model",
        ),
        (
            {"model.num_classes": 1, "loss.decode": [{**CE, "class_weight": [1, 2, 3]}]},
            r"loss\.decode\[0\]\.class_weight: expected 2 numbers \(one per class of this "
            r"binary model: background, class 1\), got 3",
        ),
        (
            {"model.num_classes": 1, "loss.decode": [{"type": "dice", "class_weight": [1, 2]}]},
            r"loss\.decode\[0\]\.class_weight: smp's binary DiceLoss takes no class weights",
        ),
        (
            {
                "model.num_classes": 1,
                "loss.decode": [{"type": "focal", "class_weight": "median_frequency"}],
            },
            r"loss\.decode\[0\]\.class_weight: smp's binary FocalLoss takes no class weights",
        ),
        ({"model.num_classes": 0}, r"model\.num_classes: must be > 0"),
        # no labelled pixel, or nothing to crop, rescale or score
        ({"data.transforms.crop_size": [0, 64]}, r"data\.transforms\.crop_size must be two"),
        ({"data.transforms.scale": [64, 0]}, r"data\.transforms\.scale must be two positive"),
        ({"data.transforms.ratio_range": [0.0, 2.0]}, r"ratio_range must satisfy 0 < low"),
        ({"data.transforms.cat_max_ratio": 0.0}, r"cat_max_ratio must be in \(0, 1\]"),
        ({"eval.max_samples": 0}, r"eval\.max_samples: must be >= 1, or null.*score no sample"),
        (
            {"data.train.options.num_classes": 1},
            r"data\.train\.options\.num_classes: 1 class leaves nothing to tell apart.*"
            r"label_map=\{255: 1\}.*model\.num_classes: 1 trains one sigmoid logit",
        ),
        # settings with another owner
        (
            {"model.options.ignore_index": 0},
            r"model\.options\.ignore_index: the datasets, crop padding, cat_max_ratio, label "
            r"checks and metrics all mark ignored pixels 255.*label_map=\{0: 255\}",
        ),
        (
            {"data.val.options.ignore_index": 0},
            r"data\.val\.options\.ignore_index: not a dataset option; every part of nrdseg "
            r"ignores 255",
        ),
        (
            {"data.train.options.mean": [0.5, 0.5, 0.5]},
            r"data\.train\.options\.mean: not a dataset option; normalisation is the model's: "
            r"set model\.options\.mean",
        ),
    ],
)
def test_refused_when_the_config_loads(tmp_path, overrides, expected):
    config = write_tiny_config(tmp_path / "tiny.yaml")
    with pytest.raises(ConfigError, match=expected):
        load_config(config, overrides)


def test_the_usual_settings_still_load(tmp_path):
    config = write_tiny_config(tmp_path / "tiny.yaml")
    binary = load_config(
        config,
        {
            "model.num_classes": 1,
            "model.options.ignore_index": 255,
            "loss.decode": [{**CE, "use_sigmoid": True, "class_weight": [1, 3]}, {"type": "dice"}],
            "loss.sampler": {"thresh": 0.7, "min_kept": 0},
        },
    )
    assert binary.model.num_classes == 1
    assert load_config(config, {"model.options": {"aux": False, "aux_weight": 0.0}})


def test_train_stops_before_the_work_dir(tmp_path, capsys):
    """The issue's run: num_classes 1 on 0/255 masks trained on a zero loss, exit 0."""
    config = write_tiny_config(tmp_path / "tiny.yaml")
    work = tmp_path / "run"
    args = ["train", *CPU, str(config), "--work-dir", str(work)]
    assert main([*args, "--set", "data.train.options.num_classes=1"]) == 2
    assert "data.train.options.num_classes: 1 class" in capsys.readouterr().err
    assert main([*args, "--set", "model.options.ignore_index=0"]) == 2
    assert "model.options.ignore_index" in capsys.readouterr().err
    assert not work.exists()
