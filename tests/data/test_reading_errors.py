"""Errors reading a file give the cause the exception shows, not a guess (issue 21, item 4:
a valid image over Pillow's pixel limit was "corrupt or truncated")."""

from __future__ import annotations

import errno
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nrdseg.data import DataError, build_dataset, read_image
from nrdseg.data import files as files_module
from nrdseg.data.files import MAX_IMAGE_PIXELS_ENV, read_image_size, read_mask
from tests.datasets_on_disk import make_folder, write_image


@pytest.fixture
def limit_200(monkeypatch):
    """Pillow's limit lowered to 200 pixels (refused above 400), restored afterwards."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "200")


@pytest.mark.parametrize("reader", [read_image, read_mask, read_image_size])
def test_an_image_over_the_pixel_limit_is_not_called_corrupt(tmp_path, limit_200, reader):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "big.png")  # 600 pixels
    with pytest.raises(DataError) as caught:
        reader(tmp_path / "big.png")
    message = str(caught.value)
    assert "big.png: " in message and "exceeds limit of 400 pixels" in message
    assert "decompression-bomb guard" in message and "PIL.Image.MAX_IMAGE_PIXELS = 200" in message
    assert "--max-image-pixels N" in message and "--mode slide" in message
    assert "corrupt" not in message and "not an image file" not in message


def test_raising_the_limit_reads_it_here_and_in_a_fresh_worker_process(tmp_path, limit_200):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "big.png")
    files_module.set_max_image_pixels(1000)
    assert read_image(tmp_path / "big.png").shape == (3, 20, 30)
    # A spawned DataLoader worker is a fresh interpreter: it reads the limit from the env.
    code = (
        "import PIL.Image; from nrdseg.data.files import read_image; "
        f"print(PIL.Image.MAX_IMAGE_PIXELS, tuple(read_image({str(tmp_path / 'big.png')!r}).shape))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "1000 (3, 20, 30)"
    files_module.set_max_image_pixels(0)
    assert Image.MAX_IMAGE_PIXELS is None
    with pytest.raises(ValueError, match="max_image_pixels must be a pixel count >= 0, got -1"):
        files_module.set_max_image_pixels(-1)


def test_an_empty_file_is_called_empty(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"e\.png: cannot read image, the file is empty \(0 bytes\)"
    ):
        read_image(tmp_path / "e.png")


def test_a_file_of_no_known_format_lists_the_possible_causes(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"ftypheic" * 8)  # e.g. an iPhone HEIC renamed
    with pytest.raises(DataError) as caught:
        read_image_size(tmp_path / "photo.png")  # was: "not an image file" only
    assert "Pillow recognises no image format in it" in str(caught.value)
    assert "(HEIC: pillow-heif); convert it to PNG or JPEG" in str(caught.value)


def _raising(err):
    def open_(*args, **kwargs):
        raise err

    return open_


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (OSError(errno.EIO, "Input/output error"), r"cannot open image \(Input/output error\)"),
        (
            OSError("decoder jpeg2k not available"),
            r"cannot read image: this Pillow was built without the codec the file needs \(decoder",
        ),
    ],
)
def test_system_and_codec_errors_are_not_called_corrupt(tmp_path, monkeypatch, err, expected):
    write_image(tmp_path / "x.png", seed=0)
    monkeypatch.setattr(files_module.Image, "open", _raising(err))
    for reader in (read_image, read_image_size):
        with pytest.raises(DataError, match=r"x\.png: " + expected):
            reader(tmp_path / "x.png")


def test_a_binary_classes_file_is_named(tmp_path):
    make_folder(tmp_path, ["a"])
    (tmp_path / "classes.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=r"classes\.yaml: not a text \(YAML\) file"):
        build_dataset("folder", root=tmp_path)
