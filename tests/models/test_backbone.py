"""Backbone weights: local checkpoints in timm and mmseg layouts, and timm's hub path offline."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
import timm
import torch
from safetensors.torch import save_file

from nrdseg.models.backbone import TimmBackbone


def _classifier_state(name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    model = timm.create_model(name)
    for p in model.parameters():
        p.data.normal_()
    return model.state_dict()


def _assert_loaded(backbone: TimmBackbone, state: dict[str, torch.Tensor]) -> None:
    own = backbone.body.state_dict()
    assert set(own) <= set(state)
    for key, value in own.items():
        assert torch.equal(value, state[key]), key


def test_local_timm_checkpoint(tmp_path):
    state = _classifier_state("test_resnet")
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": state}, path)
    backbone = TimmBackbone(name="test_resnet", pretrained=str(path))
    _assert_loaded(backbone, state)
    report = backbone.load_report
    assert report is not None and not report.missing and not report.mismatched
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]


def test_local_safetensors_checkpoint(tmp_path):
    state = _classifier_state("test_resnet")
    path = tmp_path / "resnet.safetensors"
    save_file(state, str(path))
    _assert_loaded(TimmBackbone(name="test_resnet", pretrained=path), state)


def test_mmseg_resnetv1c_layout(tmp_path):
    """``backbone.stem.N`` -> ``conv1.N`` / ``bn1``; heads of the segmentor are dropped."""
    state = _classifier_state("resnet10t")  # deep stem like ResNetV1c
    mmseg = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        if key.startswith("conv1."):
            key = "stem." + key[len("conv1.") :]
        elif key.startswith("bn1."):
            key = "stem.7." + key[len("bn1.") :]
        mmseg["backbone." + key] = value
    mmseg["decode_head.conv_seg.weight"] = torch.zeros(19, 512, 1, 1)
    path = tmp_path / "mmseg.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": mmseg}, path)
    backbone = TimmBackbone(name="resnet10t", pretrained=path)
    _assert_loaded(backbone, state)
    assert not backbone.load_report.unexpected and not backbone.load_report.missing


def test_partial_checkpoint_reports_missing_keys(tmp_path, caplog):
    state = {k: v for k, v in _classifier_state("test_resnet").items() if "layer4" not in k}
    state["conv1.0.weight"] = torch.zeros(5, 5)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with caplog.at_level(logging.WARNING, logger="nrdseg"):
        backbone = TimmBackbone(name="test_resnet", pretrained=path)
    report = backbone.load_report
    assert report.missing and all(k.startswith("layer4.") for k in report.missing)
    assert report.mismatched and report.mismatched[0].startswith("conv1.0.weight")
    assert "missing" in caplog.text and "partial.pth" in caplog.text


def test_unrelated_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="other.pth"):
        TimmBackbone(name="test_resnet", pretrained=path)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        TimmBackbone(name="test_resnet", pretrained=tmp_path / "nowhere.pth")


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(ValueError, match="evil.pth"):
        TimmBackbone(name="test_resnet", pretrained=path)
    assert not (tmp_path / "pwned").exists()


def test_pretrained_true_goes_through_timm_hub_offline(tmp_path):
    """A hub cache laid out as huggingface_hub writes it; timm's real download path reads it."""
    state = _classifier_state("test_resnet")
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    save_file(state, str(snapshot / "model.safetensors"))
    expected = tmp_path / "expected.pth"
    torch.save(state, expected)
    script = textwrap.dedent(
        f"""
        import torch
        from nrdseg.models.backbone import TimmBackbone
        state = torch.load({str(expected)!r}, weights_only=True)
        body = TimmBackbone(name="test_resnet", pretrained=True).body
        for key, value in body.state_dict().items():
            if key in state:
                assert torch.equal(value, state[key]), key
        print("loaded", len(body.state_dict()))
        """
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded" in result.stdout


def test_any_timm_family_works():
    backbone = TimmBackbone(name="test_convnext")
    features = backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in features.values()] == [16, 8, 4, 2]
    assert [s.channels for s in backbone.shapes.values()] == [f.shape[1] for f in features.values()]
