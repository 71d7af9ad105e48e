"""``nrdseg predict`` inputs (issue 21): linked sub-folders and link loops (item 3), images
over Pillow's pixel limit and the sliding window for them (item 4)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from nrdseg.cli import main
from nrdseg.data.files import MAX_IMAGE_PIXELS_ENV
from nrdseg.data.scan import LOOP
from nrdseg.deploy.images import UNDER_OUTPUT
from nrdseg.deploy.predict import predict_files
from nrdseg.evaluation.inference import infer_logits
from nrdseg.ops.normalize import normalize
from tests.conftest import CPU
from tests.tiny_checkpoints import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return model.save_pretrained(tmp_path_factory.mktemp("inputs") / "ckpt")


def _save(path, seed, size=(20, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def test_a_linked_sub_folder_is_segmented_under_its_own_name(model, tmp_path):
    photos = tmp_path / "photos"
    _save(photos / "a.png", 0)
    for i, name in enumerate(("b.png", "c.png", "d.png")):
        _save(tmp_path / "elsewhere" / "cityA" / name, i + 1)
    (photos / "cityA").symlink_to(tmp_path / "elsewhere" / "cityA")
    summary = predict_files(model, [photos], out_dir=tmp_path / "out", progress=False)
    written = sorted(p.relative_to(tmp_path / "out" / "labels").as_posix() for p in summary.written)
    assert written == ["a.png", "cityA/b.png", "cityA/c.png", "cityA/d.png"]  # was 1 of 4
    assert not summary.skipped and not summary.left_out


def test_a_link_loop_under_a_recursive_pattern_ends_and_is_reported(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    _save(photos / "sub" / "a.png", 0)
    (photos / "sub" / "notes.txt").write_text("no image")
    (photos / "sub" / "again").symlink_to(photos)  # glob("**") followed this without end
    out = photos / "out"  # inside the inputs: its labels are no inputs of the next run
    argv = ["predict", *CPU, str(checkpoint), f"{photos}/**/*", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    assert main([*argv, "--no-progress"]) == 0  # again, with out/labels/a.png now present
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].startswith("wrote 1 label PNGs")
    left_out = printed[-1]
    assert left_out.startswith("left out 3 path(s) under the inputs: ")
    assert f"1 {LOOP}: {photos / 'sub' / 'again'}" in left_out
    assert "1 not an image file extension" in left_out and "notes.txt" in left_out
    assert f"1 {UNDER_OUTPUT}: {out / 'labels' / 'a.png'}" in left_out


def _over_the_limit(monkeypatch, tmp_path):
    """A 20 x 24 image and a pixel limit of 200: more than twice over, Pillow refuses it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "200")  # undone after the test, as the limit
    return _save(tmp_path / "big.png", 7)


def test_an_image_over_the_pixel_limit_is_named_as_such_with_the_fix(
    checkpoint, monkeypatch, tmp_path, capsys
):
    rgb = _over_the_limit(monkeypatch, tmp_path)
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path / "big.png"), "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "o1")]) == 1  # nothing written
    printed = capsys.readouterr().out
    assert "big.png: image not read: Image size (480 pixels) exceeds limit of 400 pixels" in (
        printed
    )  # was: "cannot read image, not an image file"
    assert "--max-image-pixels N" in printed and "not an image file" not in printed
    assert main([*argv, "--out", str(tmp_path / "o2"), "--max-image-pixels", "0"]) == 0
    with Image.open(tmp_path / "o2" / "labels" / "big.png") as labels:
        assert labels.size == (rgb.shape[1], rgb.shape[0])
    assert Image.MAX_IMAGE_PIXELS is None


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_the_warning_limit_is_read_with_the_fix_logged(
    model, monkeypatch, tmp_path, caplog
):
    _over_the_limit(monkeypatch, tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 480 pixels: over, not twice over
    with caplog.at_level(logging.WARNING, logger="nrdseg.data.files"):
        summary = predict_files(
            model, [tmp_path / "big.png"], out_dir=tmp_path / "o", progress=False
        )
    assert len(summary.written) == 1
    (message,) = {r.getMessage() for r in caplog.records if r.name == "nrdseg.data.files"}
    assert "big.png: image of 24 x 20 = 480 pixels is over Pillow's decompression-bomb" in message
    assert "--max-image-pixels N" in message


def test_slide_mode_gives_the_argmax_of_the_sliding_window_logits(model, checkpoint, tmp_path):
    rgb = _save(tmp_path / "in" / "x.png", 3, size=(45, 70))
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path / "in"), "--no-progress"]
    window = ["--mode", "slide", "--crop-size", "32", "32", "--stride", "24", "20"]
    assert main([*argv, "--out", str(tmp_path / "out"), *window]) == 0
    with Image.open(tmp_path / "out" / "labels" / "x.png") as written:
        labels = np.asarray(written)
    image = normalize(torch.from_numpy(rgb).permute(2, 0, 1)[None], mean=model.mean, std=model.std)
    logits = infer_logits(model, image, mode="slide", crop_size=(32, 32), stride=(24, 20))
    np.testing.assert_array_equal(labels, logits.argmax(dim=1)[0].numpy())
    whole = model.predict(rgb).numpy()
    assert (labels != whole).any()  # the windows do change the result: the mode is used


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--crop-size", "32", "32"], "crop_size and stride are used only with mode='slide'"),
        (["--mode", "slide", "--crop-size", "32", "32"], "mode='slide' needs stride"),
        (
            ["--mode", "slide", "--crop-size", "16", "16", "--stride", "32", "16"],
            "stride: [32, 16] is larger than crop_size [16, 16] in height",
        ),
    ],
)
def test_slide_settings_are_checked_before_any_input_is_read(
    checkpoint, tmp_path, capsys, flags, message
):
    _save(tmp_path / "x.png", 0)
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]
    assert main([*argv, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
