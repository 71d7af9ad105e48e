"""DUC, CARAFE and DUpsampling in the zoo: native sizes, gradients, GMACs.

Their ONNX export (dynamic batch and size, down to one encoder cell) is the contract
battery's (``test_zoo_contract.py``).
"""

from __future__ import annotations

import pytest
import torch

import nrdseg
from nrdseg.analysis.flops import model_flops
from tests.conftest import tiny_options

HEADS = ["duc_r50", "carafe_r50", "dupsample_r50"]
#: Native output stride of each head on the stride-32 encoder.
STRIDE = {"duc_r50": 1, "carafe_r50": 4, "dupsample_r50": 1}


@pytest.mark.parametrize("name", HEADS)
def test_native_resolution_any_size_and_gradients(name):
    model = nrdseg.create_model(name, num_classes=4, **tiny_options(name)).eval()
    with torch.no_grad():
        for height, width in ((96, 128), (32, 160)):
            native, _ = model.decode_padded(torch.randn(1, 3, height, width))
            assert native.shape == (1, 4, height // STRIDE[name], width // STRIDE[name])
        assert model(torch.randn(1, 3, 70, 101)).shape == (1, 4, 70, 101)
    model.train()
    labels = torch.randint(0, 4, (2, 64, 64))
    model.loss(torch.randn(2, 3, 64, 64), labels)["loss"].backward()
    for param_name, param in model.decoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def _analytic_decoder_macs(name: str, classes: int, cells: int) -> int:
    """Multiply-accumulates of each head at a 512-channel, stride-32 encoder output."""
    if name == "duc_r50":  # 3x3 conv 512 -> C * 32^2
        return cells * 512 * 9 * classes * 32**2
    if name == "dupsample_r50":  # 3x3 512 -> 512, 1x1 512 -> 256, W: 256 -> C * 32^2
        return cells * (512 * 512 * 9 + 512 * 256 + 256 * classes * 32**2)
    # CARAFE: three 1x1 compressors (512 -> 64) and the classifier at stride 32; per x2
    # stage a 3x3 encoder 64 -> 4 * 25 at its input size and a 25-tap reassembly of the
    # channels still carried (later compressors' outputs + logits) at its output size.
    macs = cells * 512 * (3 * 64 + classes)
    for stage in range(3):
        inputs = cells * 4**stage
        carried = 64 * (2 - stage) + classes
        macs += inputs * 64 * 9 * 100 + 4 * inputs * 25 * carried
    return macs


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize(("classes", "height", "width"), [(19, 1024, 2048), (150, 512, 512)])
def test_decoder_gmacs_are_analytic(name, classes, height, width):
    report = model_flops(name, num_classes=classes, height=height, width=width)
    expected = _analytic_decoder_macs(name, classes, (height // 32) * (width // 32))
    assert report.decoder == pytest.approx(expected / 1e9, rel=1e-9)
    assert report.backbone + report.neck + report.decoder == pytest.approx(report.total)
