"""frozen_stages (mmseg's meaning) and the open-mmlab ResNeXt layout (issue 12, part 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from torch import nn

import nrdseg
from nrdseg.config.run import load_config
from nrdseg.engine.convert_sync_batchnorm import convert_sync_batchnorm
from nrdseg.models.backbone import TimmBackbone, load_backbone_checkpoint
from tests.conftest import TINY

X101_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ade20k" / "nrd_x101.yaml"
FROZEN = ("conv1", "bn1", "layer1")


def _x101_config_model() -> nrdseg.Segmentor:
    """The X101 config's model with the tiny test backbone (a ResNet with the same names)."""
    cfg = load_config(X101_CONFIG)
    options = {**cfg.model.options, **TINY, "controller_channels": 32}
    return nrdseg.create_model(cfg.model.name, num_classes=4, **options)


def _frozen(model: nrdseg.Segmentor, key: str) -> bool:
    return key.split(".")[2] in FROZEN  # backbone.body.<child>.*


def _norm_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        key: value.clone()
        for key, value in model.backbone.state_dict().items()
        if key.endswith(("running_mean", "running_var"))
    }


def test_x101_config_freezes_the_stem_and_layer1():
    assert load_config(X101_CONFIG).model.options["frozen_stages"] == 1
    model = _x101_config_model().train()
    for key, param in model.named_parameters():
        assert param.requires_grad is not _frozen(model, key), key
    images, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))
    before = _norm_stats(model)
    model.loss(images, labels)["loss"].backward()
    for key, param in model.named_parameters():
        if _frozen(model, key):
            assert param.grad is None, key
        else:
            assert param.grad is not None, key
    after = _norm_stats(model)
    moved = {key for key in before if not torch.equal(before[key], after[key])}
    assert moved and all(
        not key.startswith(("body.conv1", "body.bn1", "body.layer1")) for key in moved
    )
    assert any(key.startswith("body.layer2") for key in moved)


def test_frozen_batch_norms_stay_in_eval_mode_through_train_calls():
    model = _x101_config_model()
    for mode in (True, False, True):
        model.train(mode)
        for key, module in model.backbone.body.named_modules():
            if isinstance(module, nn.BatchNorm2d):
                frozen = key.split(".")[0] in FROZEN
                assert module.training is (mode and not frozen), key


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # nrdseg's CPU SyncBN, torch's (no GPU used)
def test_frozen_stages_survive_sync_batch_norm_conversion(device):
    model = convert_sync_batchnorm(_x101_config_model(), device=torch.device(device)).train()
    for key, param in model.named_parameters():
        assert param.requires_grad is not _frozen(model, key), key
    assert not model.backbone.body.bn1.training and model.backbone.body.layer2.training


@pytest.mark.parametrize(
    ("stages", "frozen"),
    [(-1, set()), (0, {"conv1", "bn1"}), (2, {"conv1", "bn1", "layer1", "layer2"})],
)
def test_frozen_stages_follow_mmseg(stages, frozen):
    backbone = TimmBackbone(name="resnet10t", frozen_stages=stages)  # deep stem, as ResNetV1c
    for key, param in backbone.body.named_parameters():
        assert param.requires_grad is (key.split(".")[0] not in frozen), key


def test_frozen_stages_cut_any_timm_backbone_at_its_strides():
    """EfficientNet: stage k ends at the stride-2^(k+1) output; the stem-and-blocks parent
    ``blocks`` straddles the cut, so only its first children freeze."""
    backbone = TimmBackbone(name="test_efficientnet", frozen_stages=1)
    assert backbone.frozen == ["conv_stem", "bn1", "blocks.0", "blocks.1"]
    for key, param in backbone.body.named_parameters():
        assert param.requires_grad is not key.startswith(tuple(backbone.frozen)), key
    x = torch.randn(2, 3, 64, 64)
    strides = [64 // f.shape[-1] for f in backbone.train()(x).values()]
    assert strides == [4, 8, 16, 32]
    assert not backbone.body.blocks[1].training and backbone.body.blocks[2].training


def test_frozen_stages_name_what_they_need():
    with pytest.raises(
        ValueError, match=r"frozen_stages=5 is past the last stage of 'test_resnet'"
    ):
        TimmBackbone(name="test_resnet", frozen_stages=5)
    with pytest.raises(ValueError, match=r"frozen_stages must be an integer >= -1"):
        TimmBackbone(name="test_resnet", frozen_stages=-2)


@pytest.mark.parametrize("layout", ["mmseg segmentor", "open-mmlab ImageNet"])
def test_resnext_weights_in_mmseg_layout_load_completely(layout, tmp_path):
    """mmseg's ResNeXt names its parts as torchvision does (conv1, bn1, layerN.M.convK/bnK,
    downsample.0/1): a segmentor checkpoint (``backbone.*`` + heads) or open-mmlab's
    ImageNet file (+ ``fc``) fills every tensor of timm's ResNeXt."""
    tiny = {"features_only": True, "out_indices": (1, 3, 4), "layers": (1, 1, 1, 1)}
    body = timm.create_model("resnext50_32x4d", **tiny)
    torch.manual_seed(7)
    source = timm.create_model("resnext50_32x4d", layers=(1, 1, 1, 1))
    for value in source.state_dict().values():
        value.copy_(torch.randn_like(value.float()).to(value.dtype))
    state = source.state_dict()
    if layout == "mmseg segmentor":
        state = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}
        state["decode_head.conv_seg.weight"] = torch.zeros(150, 512, 1, 1)
        state["auxiliary_head.conv_seg.weight"] = torch.zeros(150, 256, 1, 1)
    path = tmp_path / "resnext.pth"
    torch.save({"meta": {"note": "fabricated"}, "state_dict": state}, path)
    report = load_backbone_checkpoint(body, path)
    assert not report.missing and not report.mismatched
    assert sorted(report.unexpected) == (
        [] if layout == "mmseg segmentor" else ["fc.bias", "fc.weight"]
    )
    assert body.layer1[0].conv2.groups == 32
    for key, value in body.state_dict().items():
        expected = state[f"backbone.{key}" if layout == "mmseg segmentor" else key]
        assert torch.equal(value, expected), key
