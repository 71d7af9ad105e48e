"""Reading images in every mode as RGB, masks without colour conversion, bad files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nrdseg.data import DataError, read_image, read_mask

ORIENTATION = 0x0112


def _rgb(size: tuple[int, int] = (4, 6)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_rgb_png_is_exact(tmp_path: Path) -> None:
    pixels = _rgb()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 4, 6)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), pixels)


def test_grayscale_is_repeated_to_rgb(tmp_path: Path) -> None:
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(gray).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert all(np.array_equal(image[c].numpy(), gray) for c in range(3))


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    pixels = _rgb()
    alpha = np.zeros((4, 6, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([pixels, alpha], axis=2), mode="RGBA").save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png").permute(1, 2, 0).numpy(), pixels)


def test_palette_image_is_expanded_to_colours(tmp_path: Path) -> None:
    indices = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([10, 20, 30, 200, 100, 50])
    image.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out[:, 0, 0].tolist() == [10, 20, 30] and out[:, 0, 1].tolist() == [200, 100, 50]


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    wide = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    assert Image.open(tmp_path / "w.png").mode.startswith("I")
    assert read_image(tmp_path / "w.png")[0].tolist() == [[0, 1, 255, 128]]


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path: Path, suffix: str) -> None:
    # Stored 4 high x 8 wide with a bright left half; orientation 6 = rotate 90 clockwise
    # to display, so the image shown is 8 high x 4 wide with the bright half on top.
    stored = np.zeros((4, 8, 3), dtype=np.uint8)
    stored[:, :4] = 255
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(stored).save(tmp_path / f"r{suffix}", exif=exif.tobytes())
    image = read_image(tmp_path / f"r{suffix}")
    assert image.shape == (3, 8, 4)
    assert image[:, :4].float().mean() > 200 and image[:, 4:].float().mean() < 50


def test_palette_mask_keeps_indices(tmp_path: Path) -> None:
    indices = np.array([[0, 3], [7, 255]], dtype=np.uint8)
    mask = Image.fromarray(indices, mode="P")
    mask.putpalette([255, 255, 255] * 256)  # every index looks white: colours must not matter
    mask.save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png"), indices)


def test_sixteen_bit_mask_with_small_values_is_accepted(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 5], [255, 1]], dtype=np.uint16)).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png")
    assert mask.dtype == np.uint8 and mask.tolist() == [[0, 5], [255, 1]]


def test_sixteen_bit_mask_with_large_values_names_them(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 300], [1000, 300]], dtype=np.uint16)).save(tmp_path / "m.png")
    with pytest.raises(DataError, match=r"m\.png: 16-bit mask holds values 300, 1000"):
        read_mask(tmp_path / "m.png")


def test_colour_mask_is_refused(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "m.png")
    with pytest.raises(DataError, match=r"m\.png: mask has mode RGB \(3 channels\)"):
        read_mask(tmp_path / "m.png")


def test_truncated_image_names_the_file(tmp_path: Path) -> None:
    Image.fromarray(_rgb((64, 64))).save(tmp_path / "t.jpg", quality=95)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.jpg: cannot read image.*truncated"):
        read_image(tmp_path / "t.jpg")


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"c\.png: cannot read mask"):
        read_mask(tmp_path / "c.png")
    with pytest.raises(DataError, match=r"image not found: .*gone\.png"):
        read_image(tmp_path / "gone.png")
