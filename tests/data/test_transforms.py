"""Training and evaluation transforms: masks stay exact, crops, padding, flips, sizes."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from nrdseg.data import build_transforms
from nrdseg.data.photometric import PhotometricDistortion, scale_saturation
from nrdseg.data.transforms import keep_ratio_size
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD


def _blocks(height: int, width: int, block: int = 4) -> torch.Tensor:
    """A mask of block x block squares with values 0, 10, ..., far apart so blends would show."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (((ys // block) * 3 + xs // block) % 20 * 10).to(torch.uint8)


def _denormalize(image: torch.Tensor) -> torch.Tensor:
    mean, std = (
        torch.tensor(IMAGENET_MEAN)[:, None, None],
        torch.tensor(IMAGENET_STD)[:, None, None],
    )
    return ((image * std + mean) * 255).round()


def test_train_masks_only_hold_original_values_or_ignore() -> None:
    mask = _blocks(40, 56)
    mask[:3] = 255
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    transform = build_transforms(train=True, crop_size=(32, 48), scale=(56, 40))
    allowed = set(mask.unique().tolist()) | {255}
    for _ in range(25):
        out_image, out_mask = transform(image, mask)
        assert out_image.dtype == torch.float32 and out_mask.dtype == torch.int64
        assert out_image.shape == (3, 32, 48) and out_mask.shape == (32, 48)
        assert set(out_mask.unique().tolist()) <= allowed


def test_small_images_are_padded_with_zero_and_ignore() -> None:
    image = torch.full((3, 10, 12), 200, dtype=torch.uint8)
    mask = torch.ones(10, 12, dtype=torch.uint8)
    transform = build_transforms(train=True, crop_size=(16, 20), photometric=False)
    out_image, out_mask = transform(image, mask)
    assert out_mask.shape == (16, 20) and out_image.shape == (3, 16, 20)
    assert (out_mask[:10, :12] == 1).all() and (out_mask[10:] == 255).all()
    assert (out_mask[:, 12:] == 255).all()
    assert (out_image[:, 10:] == 0).all() and (out_image[:, :, 12:] == 0).all()
    assert (out_image[:, :10, :12] != 0).all()


def test_image_and_mask_stay_aligned_through_crop_flip_and_pad() -> None:
    mask = _blocks(24, 30, block=3)
    image = mask.expand(3, -1, -1).clone()  # every pixel's colour is its label
    transform = build_transforms(train=True, crop_size=(20, 36), photometric=False)
    for _ in range(12):
        out_image, out_mask = transform(image, mask)
        inside = out_mask != 255
        assert torch.equal(_denormalize(out_image)[0][inside], out_mask[inside].float())
    both = build_transforms(train=True, flip_prob=1.0, photometric=False)
    out_image, out_mask = both(image, mask)
    assert torch.equal(out_mask, mask.flip(-1).long())
    assert torch.equal(_denormalize(out_image)[0], mask.flip(-1).float())


def test_flip_probability_zero_and_one() -> None:
    mask = _blocks(8, 8, block=2)
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    never = build_transforms(train=True, flip_prob=0.0, photometric=False)
    always = build_transforms(train=True, flip_prob=1.0, photometric=False)
    assert torch.equal(never(image, mask)[1], mask.long())
    assert torch.equal(always(image, mask)[1], mask.flip(-1).long())
    torch.testing.assert_close(always(image, mask)[0], never(image, mask)[0].flip(-1))


def _dominated(mask: torch.Tensor, ratio: float) -> bool:
    counts = torch.bincount(mask.flatten(), minlength=256)[:255]
    counts = counts[counts > 0]
    return len(counts) < 2 or counts.max() >= ratio * counts.sum()


def test_cat_max_ratio_redraws_dominated_crops() -> None:
    # 64 wide: columns 0..47 class 0, 48..63 class 1, a band of ignore on top. A 16x16 crop
    # has class 1 below 75% and above 25% only for 7 of its 49 left offsets.
    mask = torch.zeros(16, 64, dtype=torch.uint8)
    mask[:, 48:] = 1
    mask[:4] = 255  # ignored pixels do not count towards either class
    image = torch.zeros(3, 16, 64, dtype=torch.uint8)

    def dominated_rate(ratio: float) -> float:
        transform = build_transforms(
            train=True, crop_size=(16, 16), cat_max_ratio=ratio, flip_prob=0.0, photometric=False
        )
        return np.mean([_dominated(transform(image, mask)[1], 0.75) for _ in range(200)])

    assert dominated_rate(1.0) > 0.75  # plain random crops: mostly one class
    assert dominated_rate(0.75) < 0.3  # up to 10 re-draws: mostly balanced


def test_random_resize_covers_the_ratio_range_of_the_base_scale() -> None:
    image = torch.zeros(3, 20, 40, dtype=torch.uint8)
    mask = torch.zeros(20, 40, dtype=torch.uint8)
    transform = build_transforms(
        train=True, scale=(80, 40), ratio_range=(0.5, 2.0), flip_prob=0, photometric=False
    )
    widths = [transform(image, mask)[1].shape[1] for _ in range(60)]
    assert 40 <= min(widths) < 60 and 130 < max(widths) <= 160
    heights = [transform(image, mask)[1].shape[0] for _ in range(5)]
    assert all(19 <= h <= 80 for h in heights)


def test_keep_ratio_size_follows_long_and_short_edges() -> None:
    assert keep_ratio_size(1024, 2048, (2048, 1024)) == (1024, 2048)
    assert keep_ratio_size(512, 1024, (2048, 1024)) == (1024, 2048)
    assert keep_ratio_size(375, 500, (2048, 512)) == (512, 683)  # short edge binds
    assert keep_ratio_size(100, 1000, (2048, 512)) == (205, 2048)  # long edge binds


def test_eval_resizes_the_image_only() -> None:
    image = torch.randint(0, 256, (3, 6, 10), dtype=torch.uint8)
    mask = _blocks(6, 10, block=2)
    out_image, out_mask = build_transforms(train=False, scale=(20, 12))(image, mask)
    assert out_image.shape == (3, 12, 20) and torch.equal(out_mask, mask.long())
    plain_image, plain_mask = build_transforms(train=False)(image, mask)
    assert plain_image.shape == (3, 6, 10) and torch.equal(plain_mask, mask.long())
    torch.testing.assert_close(_denormalize(plain_image), image.float())


def test_saturation_matches_hsv_scaling() -> None:
    pixels = torch.rand(3, 5, 7)
    for factor in (0.5, 1.4):
        got = scale_saturation(pixels, factor)
        for y, x in [(0, 0), (2, 3), (4, 6)]:
            h, s, v = colorsys.rgb_to_hsv(*pixels[:, y, x].tolist())
            expected = colorsys.hsv_to_rgb(h, min(s * factor, 1.0), v)
            assert got[:, y, x].tolist() == pytest.approx(expected, abs=1e-5)


def test_photometric_changes_colours_but_not_the_mask() -> None:
    from torchvision import tv_tensors

    image = tv_tensors.Image(torch.rand(3, 8, 8))
    mask = tv_tensors.Mask(_blocks(8, 8, block=2))
    changed = 0
    for _ in range(10):
        out, out_mask = PhotometricDistortion()(image, mask)
        assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
        assert out_mask is mask
        changed += not torch.allclose(out, image)
    assert changed >= 7  # each of four jitters applies with probability 1/2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crop_size": (0, 4)}, "crop_size must be two positive integers"),
        ({"scale": (512,)}, "scale must be two positive integers"),
        ({"ratio_range": (2.0, 0.5)}, "ratio_range must satisfy"),
        ({"cat_max_ratio": 0.0}, r"cat_max_ratio must be in \(0, 1\]"),
        ({"flip_prob": 1.5}, r"flip_prob must be in \[0, 1\]"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_transforms(train=True, **options)


def test_inputs_are_checked() -> None:
    transform = build_transforms(train=False)
    with pytest.raises(TypeError, match=r"expected a uint8 image \(3, H, W\)"):
        transform(torch.rand(3, 4, 4), torch.zeros(4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"mask \(4, 5\) does not match image \(4, 4\)"):
        transform(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 5, dtype=torch.uint8))
