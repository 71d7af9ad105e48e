"""NRD's generated MLPs at initialisation: dead with the authors' zero bias, live from a
template (``mlp_bias_init``). The README's "Real images (CamVid)" cites these numbers."""

from __future__ import annotations

import pytest
import torch

from nrdseg import create_model
from nrdseg.ops.dynamic_mlp import split_params


def _start(name: str, init: str) -> tuple[float, float, list[float]]:
    """Logit variance within / between cells, and the gradient on each generated part
    (w0, b0, w1, b1, w2, b2) relative to the mean, for one loss step at init."""
    torch.manual_seed(0)
    model = create_model(
        name, num_classes=5, backbone="test_resnet", neck_channels=32, controller_channels=32,
        aux=False, mlp_bias_init=init,
    ).train()  # fmt: skip
    head = model.decoder
    images, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))
    maps = model.encode(images)
    logits = head.forward_plain(maps["neck"], maps["stride4"])
    s = head.upsample_factor
    batch, classes, height, width = logits.shape
    cells = logits.detach().reshape(batch, classes, height // s, s, width // s, s)
    within = cells.var(dim=(3, 5)).mean().item()
    between = cells.mean(dim=(3, 5)).var().item()
    model.loss(images, labels)["loss"].backward()
    grad = head.controller_out.weight.grad.abs().reshape(head.num_params, -1).mean(1)
    parts = split_params(
        grad[None], in_channels=head.mlp_in_channels, hidden_channels=head.rep_channels,
        num_classes=5,
    )  # fmt: skip
    return within, between, [(p.mean() / grad.mean()).item() for p in parts]


@pytest.mark.parametrize("name", ["nrd_r50", "nrd_r50_coord_only"])
def test_zero_bias_mlps_start_dead_and_template_ones_live(name):
    within, between, (w0, _, w1, _, w2, b2) = _start(name, "zeros")
    assert within < 1e-9 * between  # every cell paints one constant block
    assert max(w0, w1) < 1e-2 and w2 < 0.1 < 10 < b2  # only the last bias learns
    within, between, (w0, _, w1, _, w2, b2) = _start(name, "template")
    assert within > 0.05 * between  # logits vary inside a cell from the start
    assert w2 > 0.2 * b2 and min(w0, w1) > 1e-3


def test_template_is_a_kaiming_draw_in_the_bias_and_zoo_defaults():
    head = create_model(
        "nrd_r50", num_classes=5, backbone="test_resnet", mlp_bias_init="template"
    ).decoder
    w0, b0, w1, b1, w2, b2 = split_params(
        head.controller_out.bias.detach()[None], in_channels=18, hidden_channels=16, num_classes=5
    )
    assert w0.std().item() == pytest.approx((2 / 18) ** 0.5, rel=0.35)
    assert w1.std().item() == pytest.approx((2 / 16) ** 0.5, rel=0.35)
    assert not any(t.any() for t in (b0, b1, w2, b2))
    zoo = {name: create_model(name, num_classes=3, backbone="test_resnet").decoder.mlp_bias_init
           for name in ("nrd_r50", "nrd_r101", "nrd_r50_guidance_only", "nrd_r50_coord_only")}  # fmt: skip
    assert zoo == {"nrd_r50": "zeros", "nrd_r101": "zeros", "nrd_r50_guidance_only": "zeros",
                   "nrd_r50_coord_only": "template"}  # fmt: skip
    with pytest.raises(ValueError, match=r"mlp_bias_init must be one of \('zeros', 'template'\)"):
        create_model("nrd_r50", num_classes=3, backbone="test_resnet", mlp_bias_init="ones")
