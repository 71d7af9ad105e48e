"""DUpsampling decoder (Tian et al., CVPR 2019): a low-dimensional code per encoder cell,
decoded into the cell's r x r x C label patch by one linear map W."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.models.blocks import ConvBNReLU
from nrdseg.models.heads.base import DecodeHead
from nrdseg.ops.label_patches import collect_patches, one_hot_patches, pca_basis
from nrdseg.ops.labels import IGNORE_INDEX, label_classes


@dataclass(frozen=True)
class DUpsamplingBasis:
    """W for a DUpsampling head: ``weight`` (K, C*r*r) rows and the ``mean`` (C*r*r,) patch.

    Vectors are class-major (index ``c * r * r + i * r + j``), see
    :mod:`nrdseg.ops.label_patches`.
    """

    weight: torch.Tensor
    mean: torch.Tensor
    ratio: int
    num_classes: int


def fit_dupsampling_basis(
    labels: Iterable[torch.Tensor],
    *,
    ratio: int,
    num_classes: int,
    channels: int,
    max_patches: int = 2048,
    ignore_index: int = IGNORE_INDEX,
    seed: int = 0,
) -> DUpsamplingBasis:
    """PCA of the one-hot r x r patches of training label maps, Tian et al.'s W.

    Takes a uniform sample of at most ``max_patches`` ignore-free patches (streaming, so any
    iterable of (H, W) label tensors works, e.g. ``(d["label"] for d in dataset)``) and
    keeps the top ``channels`` principal directions. Load it with
    :meth:`DUpsamplingHead.load_basis`. For a binary head (``num_classes=1``, labels 0/1)
    the patches are those of class 1 alone, the one channel the head reconstructs.
    """
    patches = collect_patches(
        labels,
        ratio=ratio,
        max_patches=max_patches,
        complete_only=True,
        ignore_index=ignore_index,
        seed=seed,
    )
    vectors = one_hot_patches(
        patches, num_classes=label_classes(num_classes), ignore_index=ignore_index
    )
    if num_classes == 1:  # class-major: class 1's r x r block is the second half
        vectors = vectors[:, ratio * ratio :]
    mean, weight = pca_basis(vectors, channels)
    return DUpsamplingBasis(weight=weight, mean=mean, ratio=ratio, num_classes=num_classes)


class DUpsamplingHead(DecodeHead):
    """3x3 conv + BN + ReLU, 1x1 to a ``code_channels`` code per cell, then W and a shuffle.

    ``reconstruct`` is the linear map W (a 1x1 conv, its bias the mean patch) from the code
    to the cell's class-major r x r x C patch; a pixel shuffle lays it out, so r = 32 on the
    stride-32 encoder gives full-resolution logits. W is learned end to end by default;
    :meth:`load_basis` initialises it from the PCA of training labels instead
    (:func:`fit_dupsampling_basis`). The logits are divided by a learned temperature, which
    matters for a PCA-initialised W: its outputs are one-hot-scale, too flat for softmax.
    """

    width_options = ("channels",)
    classifiers = ()
    own_init: ClassVar[dict[str, str]] = {
        "predictor": "PyTorch's default: DUpsampling has no mmseg counterpart",
        "reconstruct": "PyTorch's default, or the PCA basis (load_basis)",
    }

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 512,
        code_channels: int = 256,
        ratio: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ratio = ratio
        self.conv = ConvBNReLU(in_channels, channels, kernel_size=3)
        self.dropout = nn.Dropout2d(dropout)
        self.predictor = nn.Conv2d(channels, code_channels, kernel_size=1)
        self.reconstruct = nn.Conv2d(code_channels, num_classes * ratio**2, kernel_size=1)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def load_basis(self, basis: DUpsamplingBasis, *, freeze: bool = False) -> None:
        """Set W and the mean patch from a PCA fit; ``freeze=True`` keeps them fixed.

        Freezing trains only the code predictor, as Tian et al. do with their pre-computed W;
        the default uses the PCA as an initialisation. Freezing is a training choice and is
        not stored in checkpoints.
        """
        expected = (self.reconstruct.in_channels, self.num_classes * self.ratio**2)
        if (basis.ratio, basis.num_classes) != (self.ratio, self.num_classes):
            raise ValueError(
                f"basis was fitted for ratio {basis.ratio} and {basis.num_classes} classes; "
                f"this head has ratio {self.ratio} and {self.num_classes} classes"
            )
        if tuple(basis.weight.shape) != expected:
            raise ValueError(
                f"basis weight has shape {tuple(basis.weight.shape)}, expected {expected} "
                "(code_channels, num_classes * ratio^2)"
            )
        self.reconstruct.weight.copy_(basis.weight.T.reshape(*self.reconstruct.weight.shape))
        self.reconstruct.bias.copy_(basis.mean)
        self.reconstruct.requires_grad_(not freeze)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = self.predictor(self.dropout(self.conv(x)))
        patches = F.pixel_shuffle(self.reconstruct(code), self.ratio)
        return patches * torch.exp(-self.log_temperature)
