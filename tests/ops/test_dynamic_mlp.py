"""The fast per-patch MLP against a slow per-patch loop written independently here."""

from __future__ import annotations

import pytest
import torch

from nrdseg.models.heads import NRDHead
from nrdseg.ops.dynamic_mlp import mlp_param_count, patch_coordinates, per_patch_mlp


def reference_mlp(
    inputs: torch.Tensor, params: torch.Tensor, hidden: int, classes: int
) -> torch.Tensor:
    """One patch at a time: read w0,b0,w1,b1,w2,b2 out-major from the flat vector, apply."""
    batch, cin, height, width = inputs.shape
    cells_h, cells_w = params.shape[-2:]
    s = height // cells_h
    out = torch.zeros(batch, classes, height, width, dtype=torch.float64)
    for b in range(batch):
        for ci in range(cells_h):
            for cj in range(cells_w):
                flat = params[b, :, ci, cj].double()
                pos = 0
                layers = []
                for n_out, n_in in ((hidden, cin), (hidden, hidden), (classes, hidden)):
                    weight = flat[pos : pos + n_out * n_in].reshape(n_out, n_in)
                    pos += n_out * n_in
                    bias = flat[pos : pos + n_out]
                    pos += n_out
                    layers.append((weight, bias))
                assert pos == flat.numel()
                block = inputs[b, :, ci * s : (ci + 1) * s, cj * s : (cj + 1) * s].double()
                x = block.reshape(cin, s * s)
                for k, (weight, bias) in enumerate(layers):
                    x = weight @ x + bias[:, None]
                    if k < 2:
                        x = x.clamp(min=0)
                out[b, :, ci * s : (ci + 1) * s, cj * s : (cj + 1) * s] = x.reshape(classes, s, s)
    return out


@pytest.mark.parametrize(
    ("batch", "cells_h", "cells_w", "classes", "s", "cin", "hidden"),
    [
        (1, 1, 1, 3, 2, 18, 16),
        (2, 3, 4, 19, 8, 18, 16),
        (3, 2, 5, 7, 4, 2, 8),
        (1, 4, 2, 150, 3, 16, 32),
    ],
)
def test_fast_mlp_matches_reference(batch, cells_h, cells_w, classes, s, cin, hidden):
    n = mlp_param_count(in_channels=cin, hidden_channels=hidden, num_classes=classes)
    inputs = torch.randn(batch, cin, cells_h * s, cells_w * s)
    params = torch.randn(batch, n, cells_h, cells_w) * 0.5
    fast = per_patch_mlp(inputs, params, hidden_channels=hidden, num_classes=classes)
    slow = reference_mlp(inputs, params, hidden, classes)
    assert fast.shape == (batch, classes, cells_h * s, cells_w * s)
    scale = slow.abs().max().item()
    torch.testing.assert_close(fast.double(), slow, rtol=1e-5, atol=1e-5 * scale)


def test_fast_mlp_gradients_match_reference():
    cin, hidden, classes = 4, 5, 3
    n = mlp_param_count(in_channels=cin, hidden_channels=hidden, num_classes=classes)
    inputs = torch.randn(2, cin, 6, 9, dtype=torch.float64, requires_grad=True)
    params = torch.randn(2, n, 2, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, classes, 6, 9, dtype=torch.float64)
    (
        per_patch_mlp(inputs, params, hidden_channels=hidden, num_classes=classes) * weights
    ).sum().backward()
    fast_grads = inputs.grad.clone(), params.grad.clone()
    inputs.grad = params.grad = None
    (reference_mlp(inputs, params, hidden, classes) * weights).sum().backward()
    torch.testing.assert_close(fast_grads[0], inputs.grad)
    torch.testing.assert_close(fast_grads[1], params.grad)


@pytest.mark.parametrize(("classes", "expected"), [(19, 899), (150, 3126)])
def test_generated_parameters_per_location(classes, expected):
    head = NRDHead(in_channels=8, low_level_channels=4, num_classes=classes, controller_channels=8)
    assert head.num_params == expected
    assert head.controller_out.out_channels == expected
    params = head.controller(torch.randn(1, 8, 2, 2))
    assert params.shape == (1, expected, 2, 2)


def test_variant_parameter_counts():
    coord_only = NRDHead(in_channels=8, low_level_channels=4, num_classes=19, use_guidance=False)
    assert coord_only.num_params == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 19 + 19
    guidance_only = NRDHead(in_channels=8, low_level_channels=4, num_classes=19, use_coords=False)
    assert guidance_only.num_params == 16 * 16 + 16 + 16 * 16 + 16 + 16 * 19 + 19
    wide = NRDHead(in_channels=8, low_level_channels=4, num_classes=19, rep_channels=32)
    assert wide.num_params == 18 * 32 + 32 + 32 * 32 + 32 + 32 * 19 + 19
    with pytest.raises(ValueError, match="at least one input"):
        NRDHead(
            in_channels=8, low_level_channels=4, num_classes=3, use_coords=False, use_guidance=False
        )


def test_patch_coordinates_are_local_x_then_y():
    coords = patch_coordinates(4)
    steps = torch.tensor([0.0, 0.25, 0.5, 0.75])
    assert coords.shape == (2, 4, 4)
    torch.testing.assert_close(coords[0], steps.expand(4, 4))  # x varies along columns
    torch.testing.assert_close(coords[1], steps[:, None].expand(4, 4))  # y along rows


def test_controller_init_is_scaled_xavier_with_zero_bias():
    head = NRDHead(in_channels=512, low_level_channels=256, num_classes=19)
    last = head.controller_out
    assert torch.count_nonzero(last.bias) == 0
    xavier_std = (2.0 / (512 + 899)) ** 0.5
    assert last.weight.std().item() == pytest.approx(xavier_std / 899, rel=0.05)


def test_nrd_head_matches_a_handwritten_decoder():
    """Controller, guidance, coordinates, BN and the cell -> block ownership, end to end."""
    head = NRDHead(
        in_channels=6, low_level_channels=5, num_classes=4, controller_channels=7, upsample_factor=4
    )
    for module in head.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        head.controller_out.weight.normal_(0, 0.1)
    head.eval()
    x = torch.randn(2, 6, 3, 2)
    low = torch.randn(2, 5, 12, 8)
    out = head(x, low)

    with torch.no_grad():
        params = head.controller(x)
        guidance = head.guidance(low)
        norm = head.input_norm
        expected = torch.zeros(2, 4, 12, 8, dtype=torch.float64)
        for b in range(2):
            for ci in range(3):
                for cj in range(2):
                    for py in range(4):
                        for px in range(4):
                            r, c = ci * 4 + py, cj * 4 + px
                            feat = torch.cat([torch.tensor([px / 4, py / 4]), guidance[b, :, r, c]])
                            feat = (feat - norm.running_mean) / torch.sqrt(
                                norm.running_var + norm.eps
                            )
                            expected[b, :, r, c] = _mlp_at(params[b, :, ci, cj], feat)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def _mlp_at(flat: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    x = feat.double()
    flat = flat.double()
    pos = 0
    for k, (n_out, n_in) in enumerate(((16, 18), (16, 16), (4, 16))):
        weight = flat[pos : pos + n_out * n_in].reshape(n_out, n_in)
        pos += n_out * n_in
        x = weight @ x + flat[pos : pos + n_out]
        pos += n_out
        if k < 2:
            x = x.clamp(min=0)
    return x
