"""FADE's two operators (Lu, Liu, Cao, Shen, ECCV 2022): semi-shift convolution and the
decoder-dependent gate, in plain PyTorch for a x``scale`` upsampling step.

Both pair a low-res decoder map (B, C, H, W) with a high-res encoder map (B, C', sH, sW)
and read the decoder map only at low resolution: each high-res pixel takes the value of
its parent, the low-res pixel (i // s, j // s). The parent is broadcast with
``expand``, not ``F.interpolate``: its backward is a plain sum, deterministic on CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def parent_values(low: torch.Tensor, *, scale: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, sH, sW): each high-res pixel takes its parent's value
    (nearest-neighbour upsampling by an integer ``scale``)."""
    batch, channels, height, width = low.shape
    out = low[:, :, :, None, :, None].expand(batch, channels, height, scale, width, scale)
    return out.reshape(batch, channels, height * scale, width * scale)


def _check_pair(encoder: torch.Tensor, decoder: torch.Tensor, scale: int) -> None:
    expected = (decoder.shape[-2] * scale, decoder.shape[-1] * scale)
    if tuple(encoder.shape[-2:]) != expected or encoder.shape[0] != decoder.shape[0]:
        raise ValueError(
            f"encoder map {tuple(encoder.shape)} must be the decoder map "
            f"{tuple(decoder.shape)} upsampled x{scale} (same batch, {expected[0]}x{expected[1]})"
        )


def semi_shift_conv(
    encoder: torch.Tensor,
    decoder: torch.Tensor,
    *,
    encoder_weight: torch.Tensor,
    decoder_weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    scale: int = 2,
) -> torch.Tensor:
    """FADE's semi-shift convolution: (B, Ce, sH, sW), (B, Cd, H, W) -> (B, O, sH, sW).

    The naive form upsamples the decoder map to the encoder's size and runs one k x k
    convolution over both. Semi-shift instead slides the window one pixel at a time on
    the encoder map and one low-res pixel every ``scale`` pixels on the decoder map:
    output pixel p is ``conv(encoder, encoder_weight)[p] + conv(decoder, decoder_weight)
    [parent(p)] + bias``, so the decoder half runs at low resolution (s^2 fewer MACs) and
    the s x s children of a low-res pixel share its decoder term. Weights (O, C, k, k),
    k odd, zero padding. Raises ``ValueError`` when the maps' sizes do not pair up.
    """
    _check_pair(encoder, decoder, scale)
    own = F.conv2d(encoder, encoder_weight, bias, padding=encoder_weight.shape[-1] // 2)
    shared = F.conv2d(decoder, decoder_weight, padding=decoder_weight.shape[-1] // 2)
    return own + parent_values(shared, scale=scale)


def gated_blend(
    encoder: torch.Tensor, upsampled: torch.Tensor, gate_logits: torch.Tensor, *, scale: int = 2
) -> torch.Tensor:
    """FADE's gate: ``g * encoder + (1 - g) * upsampled`` with ``g = sigmoid(gate_logits)``
    of each pixel's parent.

    ``encoder`` and ``upsampled`` (B, C, sH, sW); ``gate_logits`` (B, 1 or C, H, W), computed
    from the decoder map, so the decoder decides where the encoder's detail passes.
    Raises ``ValueError`` when the sizes do not pair up.
    """
    _check_pair(encoder, gate_logits, scale)
    if encoder.shape != upsampled.shape:
        raise ValueError(
            f"encoder map {tuple(encoder.shape)} and upsampled decoder map "
            f"{tuple(upsampled.shape)} must have one shape to be blended"
        )
    gate = parent_values(torch.sigmoid(gate_logits), scale=scale)
    return upsampled + gate * (encoder - upsampled)
