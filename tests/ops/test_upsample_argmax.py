"""Band-by-band upsample + argmax against upsampling the whole map, bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nrdseg
from nrdseg.ops.upsample_argmax import label_dtype, upsample_argmax
from tests.conftest import tiny_options


def _full(logits: torch.Tensor, size, crop) -> torch.Tensor:
    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return up[..., : crop[0], : crop[1]].argmax(dim=1)


@pytest.mark.parametrize(
    ("shape", "size", "crop"),
    [
        ((2, 5, 8, 12), (32, 48), (29, 45)),  # stride 4, odd crop
        ((1, 19, 3, 5), (96, 160), (70, 101)),  # stride 32, crop ends inside a band
        ((1, 4, 6, 6), (48, 24), (48, 24)),  # different x factor, no crop
        ((2, 3, 5, 7), (15, 28), (13, 20)),  # factor 3: whole-map fallback
        ((1, 6, 9, 9), (9, 9), (7, 8)),  # already full size
    ],
)
@pytest.mark.parametrize("band_bytes", [1, 3000, 2**30])
def test_bands_equal_whole_map(shape, size, crop, band_bytes):
    logits = torch.randn(*shape)
    labels = upsample_argmax(logits, size=size, crop=crop, max_band_bytes=band_bytes)
    assert labels.dtype == torch.uint8
    assert torch.equal(labels.long(), _full(logits, size, crop))


def test_bands_equal_whole_map_for_channels_last_and_near_ties():
    logits = torch.randn(2, 7, 10, 6).contiguous(memory_format=torch.channels_last)
    logits[:, 3] = logits[:, 2] + 1e-7  # nearly tied classes: rounding must match exactly
    labels = upsample_argmax(logits, size=(40, 24), crop=(37, 23), max_band_bytes=4000)
    assert torch.equal(labels.long(), _full(logits, (40, 24), (37, 23)))


@pytest.mark.parametrize(
    ("classes", "dtype"), [(19, torch.uint8), (255, torch.uint8), (256, torch.int16)]
)
def test_label_dtype_fits_the_classes(classes, dtype):
    assert label_dtype(classes) == dtype
    logits = torch.zeros(1, classes, 2, 2)
    logits[:, classes - 1] = 1.0
    labels = upsample_argmax(logits, size=(8, 8))
    assert labels.dtype == dtype and int(labels.max()) == classes - 1


def test_crop_outside_size_is_refused():
    with pytest.raises(ValueError, match="within size"):
        upsample_argmax(torch.randn(1, 3, 4, 4), size=(16, 16), crop=(17, 16))


@pytest.mark.parametrize("name", ["nrd_r50", "dlv3p_r50", "bilinear_r50"])
def test_predict_labels_equals_argmax_of_forward(name):
    model = nrdseg.create_model(name, num_classes=6, **tiny_options(name)).eval()
    for size in ((70, 101), (64, 64), (33, 95)):
        images = torch.randn(2, 3, *size)
        with torch.no_grad():
            expected = model(images).argmax(dim=1)
        labels = model.predict_labels(images)
        assert labels.dtype == torch.uint8
        assert torch.equal(labels.long(), expected)


@pytest.mark.parametrize(
    ("shape", "size", "crop"),
    [((2, 1, 8, 12), (32, 48), (29, 45)), ((1, 1, 5, 7), (15, 28), (13, 20))],
)
@pytest.mark.parametrize("band_bytes", [1, 2**30])
def test_one_channel_is_thresholded_at_zero_band_by_band(shape, size, crop, band_bytes):
    """A binary model's logit: class 1 where it is > 0 (sigmoid > 0.5) after upsampling."""
    logits = torch.randn(*shape)
    labels = upsample_argmax(logits, size=size, crop=crop, max_band_bytes=band_bytes)
    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    expected = (torch.sigmoid(up[:, 0, : crop[0], : crop[1]]) > 0.5).long()
    assert labels.dtype == torch.uint8 and 0 < int(labels.sum()) < labels.numel()
    assert torch.equal(labels.long(), expected)
