"""Training and evaluation transforms on (image, mask) pairs, built on torchvision v2.

Images travel as ``tv_tensors.Image`` and masks as ``tv_tensors.Mask``, so every geometric
step moves both together and masks are only ever resized with nearest interpolation.
Scales follow mmsegmentation: ``scale=(long, short)`` such as (2048, 1024) and the image
is resized, keeping its aspect ratio, to the largest size that fits in that box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from nrdseg.data.labels import IGNORE_INDEX
from nrdseg.data.photometric import PhotometricDistortion
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD

Pair = tuple[tv_tensors.Image, tv_tensors.Mask]

#: Crops re-drawn while one category dominates, as in mmsegmentation.
CAT_MAX_TRIES = 10


def keep_ratio_size(height: int, width: int, scale: Sequence[int]) -> tuple[int, int]:
    """(H, W) scaled as large as fits a (long, short) box, keeping the aspect ratio."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return max(int(height * factor + 0.5), 1), max(int(width * factor + 0.5), 1)


class RandomRescale(nn.Module):
    """Keep-ratio resize to ``scale`` times a ratio drawn from ``ratio_range``.

    ``resize_mask=False`` resizes the image only (evaluation keeps labels at full size).
    Images are resized bilinearly; ``antialias=False`` (the default) is what mmcv does
    (cv2 ``INTER_LINEAR``, no low-pass filter when shrinking, so the authors' models were
    trained on aliased downscales), ``True`` low-pass filters first (PIL's behaviour). Masks
    are resized with nearest neighbour (cv2's ``INTER_NEAREST`` rule too).
    """

    def __init__(
        self,
        *,
        scale: tuple[int, int],
        ratio_range: tuple[float, float] = (1.0, 1.0),
        resize_mask: bool = True,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.ratio_range = ratio_range
        self.resize_mask = resize_mask
        self.antialias = antialias

    def forward(self, image: tv_tensors.Image, mask: tv_tensors.Mask) -> Pair:
        low, high = self.ratio_range
        ratio = low if low == high else low + (high - low) * torch.rand(()).item()
        target = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        size = list(keep_ratio_size(*image.shape[-2:], target))
        image = F.resize(
            image, size, interpolation=v2.InterpolationMode.BILINEAR, antialias=self.antialias
        )
        if self.resize_mask:
            mask = F.resize(mask, size, interpolation=v2.InterpolationMode.NEAREST)
        return image, mask


class RandomCropCatMax(nn.Module):
    """Random crop of at most ``crop_size`` (H, W); while one category (ignoring 255) covers
    ``cat_max_ratio`` or more of the crop, or the crop holds a single category, re-draw it,
    up to ``CAT_MAX_TRIES`` times. Keeps crops from being all road or all sky.
    """

    def __init__(
        self, *, crop_size: tuple[int, int], cat_max_ratio: float, ignore_index: int
    ) -> None:
        super().__init__()
        self.crop_size = crop_size
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index

    def _draw(self, height: int, width: int) -> tuple[int, int, int, int]:
        crop_h, crop_w = min(self.crop_size[0], height), min(self.crop_size[1], width)
        top = int(torch.randint(height - crop_h + 1, ()).item())
        left = int(torch.randint(width - crop_w + 1, ()).item())
        return top, left, crop_h, crop_w

    def _balanced(self, mask: torch.Tensor, box: tuple[int, int, int, int]) -> bool:
        top, left, h, w = box
        counts = torch.bincount(mask[..., top : top + h, left : left + w].flatten(), minlength=256)
        counts[self.ignore_index] = 0
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max().item() < self.cat_max_ratio * counts.sum().item()

    def forward(self, image: tv_tensors.Image, mask: tv_tensors.Mask) -> Pair:
        height, width = mask.shape[-2:]
        box = self._draw(height, width)
        if self.cat_max_ratio < 1:
            for _ in range(CAT_MAX_TRIES):
                if self._balanced(mask.as_subclass(torch.Tensor), box):
                    break
                box = self._draw(height, width)
        return F.crop(image, *box), F.crop(mask, *box)


class PadTo(nn.Module):
    """Pad bottom and right up to ``size`` (H, W): image with 0, mask with ``ignore_index``."""

    def __init__(self, *, size: tuple[int, int], ignore_index: int) -> None:
        super().__init__()
        self.size = size
        self.ignore_index = ignore_index

    def forward(self, image: tv_tensors.Image, mask: tv_tensors.Mask) -> Pair:
        pad_h = max(self.size[0] - image.shape[-2], 0)
        pad_w = max(self.size[1] - image.shape[-1], 0)
        if pad_h or pad_w:
            padding = [0, 0, pad_w, pad_h]
            image = F.pad(image, padding, fill=0)
            mask = F.pad(mask, padding, fill=self.ignore_index)
        return image, mask


class SegmentationTransform(nn.Module):
    """``(image uint8 (3, H, W), mask (H, W)) -> (image float normalized, mask int64)``.

    ``normalization`` is the (mean, std) of its ``v2.Normalize`` step (None without one),
    so that a dataset can tell which normalisation its images carry.
    """

    def __init__(self, steps: Sequence[nn.Module]) -> None:
        super().__init__()
        self.steps = v2.Compose(list(steps))
        norms = [step for step in steps if isinstance(step, v2.Normalize)]
        self.normalization = (tuple(norms[-1].mean), tuple(norms[-1].std)) if norms else None

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise TypeError(
                f"expected a uint8 image (3, H, W), got {image.dtype} {tuple(image.shape)}"
            )
        if mask.shape != image.shape[1:]:
            raise ValueError(
                f"mask {tuple(mask.shape)} does not match image {tuple(image.shape[1:])}"
            )
        out_image, out_mask = self.steps(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return out_image.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor).long()


def _pair(value: Sequence[float] | None, name: str, *, positive_int: bool) -> None:
    if value is None:
        return
    if len(value) != 2 or (positive_int and not all(isinstance(v, int) and v > 0 for v in value)):
        kind = "two positive integers" if positive_int else "two numbers"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_transform_settings(
    *,
    crop_size: Sequence[int] | None,
    scale: Sequence[int] | None,
    ratio_range: Sequence[float],
    cat_max_ratio: float,
    flip_prob: float,
) -> None:
    """ValueError naming the setting when one would crop, rescale or flip into nothing
    (a crop or scale of 0 pixels, a ratio of 0, ``cat_max_ratio`` 0); the config checks
    them at load with this, :func:`build_transforms` again when it builds."""
    _pair(crop_size, "crop_size", positive_int=True)
    _pair(scale, "scale", positive_int=True)
    _pair(ratio_range, "ratio_range", positive_int=False)
    if not 0 < ratio_range[0] <= ratio_range[1]:
        raise ValueError(f"ratio_range must satisfy 0 < low <= high, got {ratio_range!r}")
    if not 0 < cat_max_ratio <= 1:
        raise ValueError(f"cat_max_ratio must be in (0, 1], got {cat_max_ratio!r}")
    if not 0 <= flip_prob <= 1:
        raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob!r}")


def build_transforms(
    *,
    train: bool,
    crop_size: tuple[int, int] | None = None,
    scale: tuple[int, int] | None = None,
    ratio_range: tuple[float, float] = (0.5, 2.0),
    cat_max_ratio: float = 0.75,
    flip_prob: float = 0.5,
    photometric: bool = True,
    antialias: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    ignore_index: int = IGNORE_INDEX,
) -> SegmentationTransform:
    """The mmseg-style pipeline: for training random resize (``ratio_range`` of ``scale``),
    random crop to ``crop_size`` with ``cat_max_ratio``, flip, photometric distortion,
    normalize, pad to ``crop_size``; for evaluation an optional keep-ratio resize of the
    image only (labels stay at full size for scoring) and normalize. ``antialias`` applies
    to both resizes (see :class:`RandomRescale`; False is mmcv's). Options that only
    make sense for training are ignored when ``train=False``.
    """
    check_transform_settings(
        crop_size=crop_size,
        scale=scale,
        ratio_range=ratio_range,
        cat_max_ratio=cat_max_ratio,
        flip_prob=flip_prob,
    )
    to_float = v2.ToDtype(torch.float32, scale=True)
    normalize = v2.Normalize(mean=list(mean), std=list(std))
    if not train:
        resize = (
            [RandomRescale(scale=tuple(scale), resize_mask=False, antialias=antialias)]
            if scale
            else []
        )
        return SegmentationTransform([*resize, to_float, normalize])
    steps: list[nn.Module] = []
    if scale is not None:
        steps.append(
            RandomRescale(scale=tuple(scale), ratio_range=tuple(ratio_range), antialias=antialias)
        )
    if crop_size is not None:
        steps.append(
            RandomCropCatMax(
                crop_size=tuple(crop_size), cat_max_ratio=cat_max_ratio, ignore_index=ignore_index
            )
        )
    steps += [v2.RandomHorizontalFlip(p=flip_prob), to_float]
    if photometric:
        steps.append(PhotometricDistortion())
    steps.append(normalize)
    if crop_size is not None:
        steps.append(PadTo(size=tuple(crop_size), ignore_index=ignore_index))
    return SegmentationTransform(steps)
