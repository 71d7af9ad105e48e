"""Eval-mode NRD decoding with every BatchNorm folded away (exactly the same function).

The controller's and the guidance branch's BatchNorms fold into their 3x3 convs. The
BatchNorm over the 18 MLP inputs is a per-channel affine map in eval mode: its guidance
part folds into the 1x1 guidance conv, and its coordinate part turns the fixed patch
coordinates into other fixed numbers, so no pass over the stride-4 map is spent on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.ops.batchnorm_folding import batchnorm_affine, can_fold, fold_conv_bn, scale_conv
from nrdseg.ops.dynamic_mlp import patch_coordinates
from nrdseg.ops.dynamic_mlp_inference import patch_mlp_inference
from nrdseg.ops.resize import resize


def _folded_conv_relu(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A ConvBNReLU block as one conv with the BatchNorm folded in, then ReLU."""
    conv = block.conv
    weight, bias = fold_conv_bn(conv, block.norm)
    out = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return out.relu_()


def supports_folding(head: nn.Module) -> bool:
    """True when every BatchNorm of ``head`` is in eval mode with running statistics."""
    norms = [head.controller_conv.norm, head.input_norm]
    if head.guidance is not None:
        norms.append(head.guidance_conv.norm)
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    return all(can_fold(n) for n in norms) and all(c.padding_mode == "zeros" for c in convs)


def controller_params(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, N, H', W') generated MLP parameters, the controller's BatchNorm folded.

    The small stride-32 input goes channels-last first, so the parameters come out
    cell-major (N contiguous per cell), the layout the per-patch MLP reads, instead of
    needing a transpose of the larger N-channel map afterwards.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    return head.controller_out(_folded_conv_relu(head.controller_conv, x))


def normalized_inputs(
    head: nn.Module, low_level: torch.Tensor, *, size: tuple[int, int], dtype: torch.dtype
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(coords (2, s, s), guidance (B, C_m, H, W)) after the input BatchNorm, folded in."""
    scale, shift = batchnorm_affine(head.input_norm)
    n_coords = 2 if head.use_coords else 0
    coords = guidance = None
    if head.use_coords:
        s = head.upsample_factor
        coords = patch_coordinates(s, device=low_level.device, dtype=dtype)
        coords = coords * scale[:2, None, None] + shift[:2, None, None]
    if head.guidance is not None:
        hidden = _folded_conv_relu(head.guidance_conv, low_level)
        last = head.guidance_out
        weight, bias = scale_conv(last, scale=scale[n_coords:], shift=shift[n_coords:])
        guidance = resize(F.conv2d(hidden, weight, bias, last.stride, last.padding), size)
    return coords, guidance


def nrd_inference_forward(
    head: nn.Module, x: torch.Tensor, low_level: torch.Tensor
) -> torch.Tensor:
    """Logits of ``head`` in eval mode, equal to its plain forward up to float rounding."""
    params = controller_params(head, x)
    cells_h, cells_w = params.shape[-2:]
    s = head.upsample_factor
    coords, guidance = normalized_inputs(
        head, low_level, size=(cells_h * s, cells_w * s), dtype=params.dtype
    )
    logits = patch_mlp_inference(
        guidance=guidance,
        coords=coords,
        params=params,
        hidden_channels=head.rep_channels,
        num_classes=head.num_classes,
    )
    # The MLP writes channels-last; return the layout of the caller's features, as a conv
    # would, so that NCHW callers get contiguous logits (a copy of the small stride-4 map).
    channels_last = not low_level.is_contiguous() and low_level.is_contiguous(
        memory_format=torch.channels_last
    )
    return logits.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
