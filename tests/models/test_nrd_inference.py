"""Eval-mode NRD (BatchNorms folded, cell-major MLP) against the plain path and a slow loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nrdseg.models.heads import NRDHead
from nrdseg.ops.batchnorm_folding import batchnorm_affine, fold_conv_bn
from nrdseg.ops.dynamic_mlp import mlp_param_count
from nrdseg.ops.dynamic_mlp_inference import patch_mlp_inference
from tests.conftest import randomize_norms
from tests.ops.test_dynamic_mlp import reference_mlp


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_fold_conv_bn_equals_conv_then_batchnorm(bias, affine):
    conv = nn.Conv2d(5, 7, 3, padding=1, bias=bias)
    bn = nn.BatchNorm2d(7, affine=affine)
    randomize_norms(bn)
    bn.eval()
    x = torch.randn(2, 5, 6, 9)
    weight, fold_bias = fold_conv_bn(conv, bn)
    folded = torch.nn.functional.conv2d(x, weight, fold_bias, padding=1)
    torch.testing.assert_close(folded, bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_batchnorm_affine_refuses_training_mode():
    bn = nn.BatchNorm2d(3).train()
    with pytest.raises(ValueError, match="eval-mode BatchNorm"):
        batchnorm_affine(bn)


def _head(num_classes: int = 5, **options) -> NRDHead:
    head = NRDHead(
        in_channels=8,
        low_level_channels=6,
        num_classes=num_classes,
        controller_channels=8,
        **options,
    )
    randomize_norms(head)
    with torch.no_grad():
        head.controller_out.weight.normal_(0.0, 0.2)
        head.controller_out.bias.normal_(0.0, 0.2)
    return head.eval()


VARIANTS = [
    {},
    {"use_guidance": False},
    {"use_coords": False},
    {"upsample_factor": 4},
    {"rep_channels": 8, "guidance_channels": 4},
]


@pytest.mark.parametrize("options", VARIANTS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_eval_path_equals_plain_path(options, channels_last):
    head = _head(**options)
    x, low = torch.randn(2, 8, 3, 4), torch.randn(2, 6, 24, 32)
    if channels_last:
        head = head.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        low = low.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast, plain = head(x, low), head.forward_plain(x, low)
    assert fast.shape == plain.shape
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * plain.abs().max().item())
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert fast.is_contiguous(memory_format=layout)  # the caller's layout, as a conv keeps it


def test_eval_path_gradients_equal_plain_path():
    """Folds are differentiable: eval-mode gradients (e.g. for saliency) stay correct."""
    head = _head().double()
    x = torch.randn(1, 8, 2, 3, dtype=torch.float64, requires_grad=True)
    low = torch.randn(1, 6, 16, 24, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(1, 5, 16, 24, dtype=torch.float64)
    leaves = [x, low, *head.parameters()]
    fast = torch.autograd.grad((head(x, low) * weights).sum(), leaves)
    plain = torch.autograd.grad((head.forward_plain(x, low) * weights).sum(), leaves)
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b)


def test_training_mode_keeps_batch_statistics():
    head = _head().train()
    before = head.input_norm.running_mean.clone()
    head(torch.randn(2, 8, 3, 4), torch.randn(2, 6, 24, 32))
    assert not torch.equal(head.input_norm.running_mean, before)


def test_batchnorm_without_running_stats_uses_the_plain_path():
    head = _head()
    head.input_norm = nn.BatchNorm2d(18, track_running_stats=False).eval()
    x, low = torch.randn(2, 8, 3, 4), torch.randn(2, 6, 24, 32)
    with torch.no_grad():
        torch.testing.assert_close(head(x, low), head.forward_plain(x, low))


#: (coord channels, guidance channels, hidden, classes, s): the paper's shape, the two
#: ablations, a patch that is not a power of two, and a wide class count.
MLP_CASES = [(2, 16, 16, 19, 8), (0, 5, 8, 7, 3), (2, 0, 16, 3, 4), (2, 4, 4, 150, 2)]


def random_mlp_case(
    coords: int, guide: int, hidden: int, classes: int, s: int
) -> tuple[dict, torch.Tensor]:
    """Keyword arguments of ``patch_mlp_inference`` (2 x 3 x 2 cells, channels-last guidance)
    and the (B, C_in, H, W) map the slow reference reads: coords tiled, then guidance."""
    n = mlp_param_count(in_channels=coords + guide, hidden_channels=hidden, num_classes=classes)
    params = torch.randn(2, n, 3, 2) * 0.5
    coord_table = torch.randn(coords, s, s) if coords else None
    guidance = torch.randn(2, guide, 3 * s, 2 * s) if guide else None
    if guidance is not None:  # a strided map: both paths read any layout
        guidance = guidance.contiguous(memory_format=torch.channels_last)
    kwargs = {
        "guidance": guidance,
        "coords": coord_table,
        "params": params,
        "hidden_channels": hidden,
        "num_classes": classes,
    }
    parts = [] if coord_table is None else [coord_table.repeat(1, 3, 2).expand(2, -1, -1, -1)]
    return kwargs, torch.cat([*parts, *([] if guidance is None else [guidance])], dim=1)


def assert_matches_reference(out: torch.Tensor, case: dict, inputs: torch.Tensor) -> None:
    slow = reference_mlp(inputs, case["params"], case["hidden_channels"], case["num_classes"])
    assert out.shape == slow.shape
    torch.testing.assert_close(out.double(), slow, rtol=1e-5, atol=1e-5 * slow.abs().max().item())


@pytest.mark.parametrize("shape", MLP_CASES)
def test_inference_mlp_matches_slow_reference(shape):
    case, inputs = random_mlp_case(*shape)
    assert_matches_reference(patch_mlp_inference(**case, backend="torch"), case, inputs)


def test_inference_mlp_rejects_mismatched_inputs():
    params = torch.randn(
        1, mlp_param_count(in_channels=18, hidden_channels=16, num_classes=3), 2, 2
    )
    coords, guidance = torch.randn(2, 4, 4), torch.randn(1, 16, 8, 8)
    with pytest.raises(ValueError, match="expects .* parameters per cell"):
        patch_mlp_inference(
            guidance=guidance, coords=coords, params=params, hidden_channels=16, num_classes=4
        )
    with pytest.raises(ValueError, match="is not 4 x the 2x2 parameter map"):
        patch_mlp_inference(
            guidance=guidance[..., :6],
            coords=coords,
            params=params,
            hidden_channels=16,
            num_classes=3,
        )
    with pytest.raises(ValueError, match="backend must be"):
        patch_mlp_inference(
            guidance=guidance,
            coords=coords,
            params=params,
            hidden_channels=16,
            num_classes=3,
            backend="cuda",
        )
