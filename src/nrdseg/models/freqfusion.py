"""FreqFusion: frequency-aware fusion of a high- and a low-resolution map.

Chen, Fu, Gu, Yan, Harada, Huang, "Frequency-aware Feature Fusion for Dense Image
Prediction", TPAMI 2024 (Linwei-Chen/FreqFusion, no licence file: written here from
the paper's description, not from that code). Standard fusion adds a bilinearly
upsampled deep map to a shallow one; FreqFusion instead

1. upsamples the deep map ``lr`` x2 with adaptive *low-pass* kernels (5x5, softmax:
   positive, summing to one), CARAFE-style reassembly, to smooth the inconsistent
   high frequencies inside objects;
2. sharpens the shallow map ``hr`` with adaptive *high-pass* kernels: identity minus a
   3x3 softmax kernel, added back residually, ``hr + (hr - lowpass3x3(hr))``, the
   paper's X~ = X + F_HP(X) with F_HP's kernel E - softmax(V) (E the identity tap);
3. resamples the upsampled ``lr`` at offsets predicted from the local cosine similarity
   of each pixel with its 8 neighbours (dilation 2), DySample's sampling
   (:func:`nrdseg.ops.dysample.dysample`), so that pixels unlike their surroundings
   take the features of similar neighbours;

and concatenates (or sums) the two. The kernels are predicted from an "initial fusion"
of 1x1-compressed copies of both maps, c = (C_hr + C_lr) / 4 channels (a multiple of
8: the sampler's GroupNorms have c / 8 groups).

Reported on SegFormer-B1, ADE20K: 44.5 mIoU, +2.8 over its bilinear baseline and +1.2
over DySample-S+, for +0.34 M parameters and +2.35 GFLOPs (counted without the
reassembly and sampling terms nrdseg counts); +1.4 mIoU for Mask2Former-R50 on
Cityscapes; in the paper's SegNeXt-T ablation (ADE20K) the low-pass path gives +0.9,
adding the high-pass +1.8 and the resampler +2.4.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.ops.carafe import reassemble, sharpen
from nrdseg.ops.dysample import dysample
from nrdseg.ops.local_similarity import local_cosine_similarity

#: "paper": near-identity start; "released": the official module-wide Xavier pass.
INITS = ("paper", "released")
FUSES = ("concat", "sum")


def compressed_width(hr_channels: int, lr_channels: int) -> int:
    """FreqFusion's compressed width: (C_hr + C_lr) / 4 rounded to a multiple of 8 (>= 8)."""
    return max(8, round((hr_channels + lr_channels) / 32) * 8)


class SimilarityGuidedSampler(nn.Module):
    """FreqFusion's offset generator: resample a x2-upsampled map where similarity leads.

    On GroupNorm'd compressed maps ``hr`` (B, c, 2H, 2W) and ``lr`` (B, c, H, W), each
    concatenated with its local cosine similarities (8 channels), 3x3 convs predict
    offsets O = D * sigmoid(A) (the paper's direction times magnitude) for ``groups``
    channel groups: D and A are each the sum of an ``lr`` conv (2*g*4 channels at H) and
    a pixel-unshuffled ``hr`` conv (2*g channels at 2H). Offsets are in ``lr`` pixels,
    the magnitude in [0, 1] (0.5 at start), added to DySample's initial positions.

    ``init="paper"``: offset convs normal(0, 0.001), magnitude convs 0, as the official
    sampler's own init intends (resampling starts as the identity). ``"released"``:
    Xavier-uniform, as the official FreqFusion's module-wide pass leaves them (it runs
    after the sampler's own init and overwrites it; issue #36 of the official
    repository), so resampling starts with offsets averaging about 0.4 of an ``lr`` pixel
    (up to 2.5; measured at c = 16 in tests/models/test_freqfusion.py).
    """

    def __init__(
        self, channels: int, *, groups: int = 4, init: Literal["paper", "released"] = "paper"
    ) -> None:
        super().__init__()
        if channels % 8:
            raise ValueError(f"the sampler's GroupNorm needs channels % 8 == 0, got {channels}")
        if init not in INITS:
            raise ValueError(f"FreqFusion init must be one of {INITS}, got {init!r}")
        self.groups = groups
        self.norm_hr = nn.GroupNorm(channels // 8, channels)
        self.norm_lr = nn.GroupNorm(channels // 8, channels)
        inputs = channels + 8

        def conv(out: int) -> nn.Conv2d:
            return nn.Conv2d(inputs, out, kernel_size=3, padding=1)

        self.lr_offset, self.lr_scope = conv(8 * groups), conv(8 * groups)
        self.hr_offset, self.hr_scope = conv(2 * groups), conv(2 * groups)
        for layer in (self.lr_offset, self.hr_offset, self.lr_scope, self.hr_scope):
            if init == "released":
                nn.init.xavier_uniform_(layer.weight)
            elif layer in (self.lr_offset, self.hr_offset):
                nn.init.normal_(layer.weight, std=1e-3)
            else:
                nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def offsets(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """(B, 2*g*4, H, W) offsets in ``lr`` pixels, before DySample's initial positions."""
        hr, lr = self.norm_hr(hr), self.norm_lr(lr)
        hr = torch.cat([hr, local_cosine_similarity(hr, dilation=2)], dim=1)
        lr = torch.cat([lr, local_cosine_similarity(lr, dilation=2)], dim=1)
        direction = self.lr_offset(lr) + F.pixel_unshuffle(self.hr_offset(hr), 2)
        magnitude = self.lr_scope(lr) + F.pixel_unshuffle(self.hr_scope(hr), 2)
        return direction * magnitude.sigmoid()

    def forward(self, hr: torch.Tensor, lr: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        """``upsampled`` (B, C, 2H, 2W) resampled at the offsets of ``hr`` and ``lr``."""
        return dysample(upsampled, self.offsets(hr, lr), scale=2, groups=self.groups)


class FreqFusion(nn.Module):
    """Fuse ``hr`` (B, C_hr, 2H, 2W) with ``lr`` (B, C_lr, H, W) -> (B, C_out, 2H, 2W).

        ``fuse="concat"`` gives C_out = C_hr + C_lr (sharpened ``hr`` first), ``"sum"``
        (needs C_hr == C_lr) gives C_hr, FPN style. ``feature_resample=False`` leaves out the
        similarity-guided sampler (the official standalone file's default).

        Kernel prediction (the paper's "initial fusion", computed as the official code does):
        the compressed ``hr`` is sharpened by its own high-pass kernels; the kernel logits
        of the fused compressed map Z = hr' + up(lr) are the 3x3 generator applied to hr'
        plus the generator's output on the compressed ``lr`` reassembled x2 by the initial
        low-pass kernels (of hr' alone). The generator is linear, so this is the generator
        of Z wherever the reassembly kernels vary slowly, at a quarter of the cost of running
        it on the upsampled map; the generator's bias enters once (twice in the official
    code, which runs the whole conv on both maps). The high-pass logits take
        their ``lr`` part reassembled by the final low-pass kernels.

        Initialisation (``init``): the compressors are Xavier-uniform and the two kernel
        generators normal(0, 0.001), so every kernel starts as a box filter, in both; only
        the sampler differs (:class:`SimilarityGuidedSampler`). Left out of the release: the
        Hamming window it can multiply the kernels by (its comment: a regulariser that does
        not matter), and mmcv's CARAFE op (reassembly here is
        :func:`nrdseg.ops.carafe.reassemble`, so half precision works, unlike issue #32).

        Raises ``ValueError`` for an unknown ``fuse`` or ``init``, "sum" with unequal widths,
        or even kernel sizes.
    """

    def __init__(
        self,
        hr_channels: int,
        lr_channels: int,
        *,
        compressed_channels: int | None = None,
        lowpass_kernel: int = 5,
        highpass_kernel: int = 3,
        encoder_kernel: int = 3,
        feature_resample: bool = True,
        sampler_groups: int = 4,
        fuse: Literal["concat", "sum"] = "concat",
        init: Literal["paper", "released"] = "paper",
    ) -> None:
        super().__init__()
        if fuse not in FUSES:
            raise ValueError(f"FreqFusion fuse must be one of {FUSES}, got {fuse!r}")
        if init not in INITS:
            raise ValueError(f"FreqFusion init must be one of {INITS}, got {init!r}")
        if fuse == "sum" and hr_channels != lr_channels:
            raise ValueError(
                f'FreqFusion fuse="sum" adds the maps: needs equal widths, got hr '
                f"{hr_channels} and lr {lr_channels}; use fuse='concat'"
            )
        if lowpass_kernel % 2 == 0 or highpass_kernel % 2 == 0 or encoder_kernel % 2 == 0:
            raise ValueError(
                f"FreqFusion kernel sizes must be odd, got lowpass {lowpass_kernel}, "
                f"highpass {highpass_kernel}, encoder {encoder_kernel}"
            )
        c = compressed_channels or compressed_width(hr_channels, lr_channels)
        self.fuse = fuse
        self.out_channels = hr_channels + lr_channels if fuse == "concat" else hr_channels
        self.hr_compressor = nn.Conv2d(hr_channels, c, kernel_size=1)
        self.lr_compressor = nn.Conv2d(lr_channels, c, kernel_size=1)
        pad = encoder_kernel // 2
        self.lowpass_encoder = nn.Conv2d(c, lowpass_kernel**2, encoder_kernel, padding=pad)
        self.highpass_encoder = nn.Conv2d(c, highpass_kernel**2, encoder_kernel, padding=pad)
        for layer in (self.hr_compressor, self.lr_compressor):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.lowpass_encoder, self.highpass_encoder):
            nn.init.normal_(layer.weight, std=1e-3)
            nn.init.zeros_(layer.bias)
        self.sampler = (
            SimilarityGuidedSampler(c, groups=sampler_groups, init=init)
            if feature_resample
            else None
        )

    @staticmethod
    def _without_bias(encoder: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, encoder.weight, padding=encoder.padding)

    def kernels(
        self, hr_c: torch.Tensor, lr_c: torch.Tensor, lr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """From the compressed maps: the low-pass (B, 25, 2H, 2W) and high-pass (B, 9, 2H,
        2W) softmax kernels, the sharpened compressed ``hr`` and ``lr`` upsampled by the
        low-pass kernels (reassembled in one go with the high-pass logits' ``lr`` part,
        which the same kernels bring to 2H)."""
        highpass_hr = self.highpass_encoder(hr_c)
        sharpened = sharpen(hr_c, highpass_hr.softmax(dim=1))
        lowpass_hr = self.lowpass_encoder(sharpened)
        lowpass_lr = self._without_bias(self.lowpass_encoder, lr_c)
        lowpass = lowpass_hr + reassemble(lowpass_lr, lowpass_hr.softmax(dim=1), scale=2)
        lowpass = lowpass.softmax(dim=1)
        highpass_lr = self._without_bias(self.highpass_encoder, lr_c)
        carried = reassemble(torch.cat([highpass_lr, lr], dim=1), lowpass, scale=2)
        taps = highpass_lr.shape[1]
        highpass = (highpass_hr + carried[:, :taps]).softmax(dim=1)
        return lowpass, highpass, sharpened, carried[:, taps:]

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        if tuple(hr.shape[-2:]) != (2 * lr.shape[-2], 2 * lr.shape[-1]):
            raise ValueError(
                f"FreqFusion fuses a map with one of half its size: hr {tuple(hr.shape)}, "
                f"lr {tuple(lr.shape)}"
            )
        hr_c, lr_c = self.hr_compressor(hr), self.lr_compressor(lr)
        _, highpass, sharpened, upsampled = self.kernels(hr_c, lr_c, lr)
        if self.sampler is not None:
            upsampled = self.sampler(sharpened, lr_c, upsampled)
        hr = sharpen(hr, highpass)
        return torch.cat([hr, upsampled], dim=1) if self.fuse == "concat" else hr + upsampled
