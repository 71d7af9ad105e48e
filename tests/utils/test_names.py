"""Every "unknown ..." message suggests the closest valid name (nrdseg.utils.names)."""

from __future__ import annotations

import pytest

from nrdseg.analysis.decoder_study import run_study
from nrdseg.analysis.experiments import CAMVID
from nrdseg.cli import main
from nrdseg.config.run import config_from_dict
from nrdseg.config.schema import ConfigError
from nrdseg.data.registry import build_dataset
from nrdseg.deploy.export import export_model, load_exported
from nrdseg.models.backbone import TimmBackbone
from nrdseg.models.loss_terms import build_loss_term
from nrdseg.models.zoo import create_model
from nrdseg.utils.names import did_you_mean


def test_a_typo_gets_the_closest_name_and_an_unrelated_name_none():
    assert did_you_mean("ifa_r5", ["ifa_r50", "nrd_r50", "dlv3p_r50"]) == " (did you mean ifa_r50?)"
    assert did_you_mean("banana", ["ifa_r50", "nrd_r50"]) == ""


def _tree(**sections):
    base = {
        "model": {"name": "nrd_r50"},
        "data": {"train": {"name": "synthetic"}},
    }
    return {**base, **sections}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda: config_from_dict(_tree(optim={"lrr": 0.1})),
            "optim.lrr: unknown key (did you mean lr?)",
        ),
        (
            lambda: config_from_dict(_tree(train={"iter": 5})),
            "train.iter: unknown key (did you mean iters?)",
        ),
        (
            lambda: config_from_dict({**_tree(), "modle": {}}),
            "modle: unknown key (did you mean model?)",
        ),
        (lambda: create_model("ifa_r5", num_classes=3), "(did you mean ifa_r50?)"),
        (
            lambda: create_model("nrd_r50", num_classes=3, mlp_bias_int="template"),
            "(did you mean mlp_bias_init?)",
        ),
        (
            lambda: build_dataset("foldr", root="x"),
            "unknown dataset 'foldr' (did you mean folder?)",
        ),
        (lambda: build_dataset("folder", root="x", lable_map={}), "(did you mean label_map?)"),
        (lambda: build_loss_term({"type": "dise"}), "unknown loss 'dise' (did you mean dice?)"),
        (lambda: build_loss_term({"type": "dice", "smoth": 1.0}), "(did you mean smooth?)"),
        (
            lambda: export_model(
                create_model("bilinear_r50", num_classes=2, pretrained=False), "m", format="onxx"
            ),
            "(did you mean onnx?)",
        ),
        (lambda: load_exported("m", format="torchscrpt"), "(did you mean torchscript?)"),
        (
            lambda: TimmBackbone(name="resnet5o"),
            "unknown timm backbone 'resnet5o' (did you mean resnet50?)",
        ),
    ],
    ids=[
        "config key",
        "config key 2",
        "config section",
        "model name",
        "model option",
        "dataset",
        "dataset option",
        "loss type",
        "loss option",
        "export format",
        "exported file format",
        "timm backbone",
    ],
)
def test_each_unknown_name_message_suggests_the_closest_valid_one(call, expected):
    with pytest.raises((ConfigError, ValueError, TypeError)) as error:
        call()
    assert expected in str(error.value)


def test_an_unknown_study_decoder_suggests_the_closest(tmp_path):
    with pytest.raises(ValueError, match=r"\(did you mean nrd_template\?\)"):
        run_study(
            ["nrd_templte"],
            seeds=[0],
            budget=CAMVID,
            out=tmp_path,
            latency_size=(64, 64),
            latency_repeats=1,
        )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("freqfussion", "(did you mean freqfusion?)"),
        ("freqfusion_r50", "(freqfusion_r50 is the zoo model of the study label freqfusion)"),
    ],
)
def test_study_decoders_on_the_command_line_get_the_hint_too(tmp_path, capsys, given, expected):
    # argparse's choices answered these with a bare "invalid choice" and the whole list
    out = tmp_path / "study"
    assert main(["study", "decoders", "--quick", "--out", str(out), "--models", given]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()
