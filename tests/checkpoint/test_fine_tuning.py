"""Fine-tuning: a zoo model starts from an nrdseg checkpoint of another class count."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import nrdseg
from nrdseg.checkpoint.fine_tune import init_from_checkpoint
from nrdseg.checkpoint.format import load_weights
from tests.conftest import tiny_options

#: One zoo entry per decoder: each has its own class-dependent layers.
ONE_PER_HEAD = [
    "nrd_r50",
    "dlv3p_r50",
    "bilinear_r50",
    "duc_r50",
    "carafe_r50",
    "dupsample_r50",
]


def _trained(name: str, num_classes: int) -> nrdseg.Segmentor:
    """A model whose every tensor differs from a fresh init (as after training)."""
    model = nrdseg.create_model(name, num_classes=num_classes, **tiny_options(name))
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor) + 0.5)
    return model


def _fresh(name: str, num_classes: int, **kwargs) -> nrdseg.Segmentor:
    torch.manual_seed(7)
    return nrdseg.create_model(name, num_classes=num_classes, **tiny_options(name), **kwargs)


@pytest.mark.parametrize("name", ONE_PER_HEAD)
def test_nineteen_class_checkpoint_starts_a_five_class_model(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Failure 2 of issue 16: what fits is loaded, class-dependent layers keep their init."""
    source = _trained(name, 19).save_pretrained(tmp_path / "ckpt")
    trained = nrdseg.load_model(source).state_dict()
    with caplog.at_level(logging.INFO, logger="nrdseg"):
        tuned = _fresh(name, 5, init_from=source)
    own_init = _fresh(name, 5).state_dict()
    differs = set()
    for key, value in tuned.state_dict().items():
        if key.startswith(("backbone.", "neck.")):  # the encoder: identical to the checkpoint
            assert torch.equal(value, trained[key]), key
        if value.shape != trained[key].shape:
            differs.add(key)
            assert torch.equal(value, own_init[key]), key  # the model's own initialisation
        elif not key.endswith("num_batches_tracked"):
            assert torch.equal(value, trained[key]), key
    assert "aux_head.classifier.weight" in differs
    if name == "nrd_r50":
        assert differs == {
            "decoder.controller.1.weight",
            "decoder.controller.1.bias",
            "aux_head.classifier.weight",
            "aux_head.classifier.bias",
        }
    assert "init_from (19 classes -> 5)" in caplog.text
    assert "re-initialised (shape differs): " in caplog.text
    assert tuned.config == {"name": name, "num_classes": 5, **tiny_options(name)}
    assert tuned.eval()(torch.randn(1, 3, 40, 40)).shape == (1, 5, 40, 40)


def test_same_class_count_loads_everything(tmp_path: Path) -> None:
    source = _trained("nrd_r50", 3)
    path = source.save_pretrained(tmp_path / "ckpt")
    model = _fresh("nrd_r50", 3)
    report = init_from_checkpoint(model, path)
    assert not (report.missing or report.mismatched or report.unexpected)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # the same through a training work dir (best/) and a weights file
    source.save_pretrained(tmp_path / "run" / "best")
    for where in (tmp_path / "run", path / "model.safetensors"):
        again = _fresh("nrd_r50", 3, init_from=where)
        assert torch.equal(again.decoder.controller[1].weight, source.decoder.controller[1].weight)


def test_another_decoder_takes_the_encoder(tmp_path: Path) -> None:
    source = _trained("nrd_r50", 19)
    path = source.save_pretrained(tmp_path / "ckpt")
    model = _fresh("dlv3p_r50", 4)
    report = init_from_checkpoint(model, path)
    assert any(k.startswith("decoder.controller.") for k in report.unexpected)
    assert any(k.startswith("decoder.fuse.") for k in report.missing)
    assert torch.equal(model.neck.bottleneck[0].weight, source.neck.bottleneck[0].weight)


def test_pretrained_takes_an_nrdseg_checkpoint_for_the_backbone(tmp_path: Path) -> None:
    """Failure 2 of issue 16: ``backbone.body.*`` keys were not recognised ("no tensor ...")."""
    source = _trained("nrd_r50", 19)
    path = source.save_pretrained(tmp_path / "ckpt")
    for pretrained in (path / "model.safetensors", path):
        model = _fresh("nrd_r50", 5, pretrained=str(pretrained))
        assert model.backbone.load_report.loaded and not model.backbone.load_report.missing
        for key, value in model.backbone.state_dict().items():
            assert torch.equal(value, source.backbone.state_dict()[key]), key
        assert not torch.equal(model.neck.bottleneck[0].weight, source.neck.bottleneck[0].weight)
    # a plain torch.save of a DDP-wrapped nrdseg model too
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save(wrapped, tmp_path / "ddp.pth")
    model = _fresh("nrd_r50", 5, pretrained=str(tmp_path / "ddp.pth"))
    assert torch.equal(model.backbone.body.conv1[0].weight, source.backbone.body.conv1[0].weight)


def test_nothing_that_fits_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3)}, str(path))
    with pytest.raises(ValueError, match=r"no tensor of .*other\.safetensors matches the nrd_r50"):
        _fresh("nrd_r50", 5, init_from=path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _fresh("nrd_r50", 5, init_from=tmp_path / "nowhere")


def test_strict_loading_points_to_init_from() -> None:
    state = _trained("nrd_r50", 19).state_dict()
    with pytest.raises(ValueError, match=r"shape mismatch: .*\n.*nrdseg train --init-from"):
        load_weights(_fresh("nrd_r50", 5), state, source="ckpt/model.safetensors")


def test_pretrained_takes_every_path_the_resolver_knows(tmp_path: Path) -> None:
    """``pretrained=`` goes through the same resolver as load_model: a work dir gives its
    best/ backbone, and a folder that is no checkpoint is named in the error."""
    source = _trained("nrd_r50", 19)
    source.save_pretrained(tmp_path / "run" / "best")
    model = _fresh("nrd_r50", 5, pretrained=str(tmp_path / "run"))
    assert model.backbone.load_report.path == str(tmp_path / "run" / "best" / "model.safetensors")
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, source.backbone.state_dict()[key]), key
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: not a checkpoint directory"):
        _fresh("nrd_r50", 5, pretrained=str(tmp_path / "empty"))
