"""Predicting on image files and in-memory images: discovery, modes, EXIF, batching, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from nrdseg.cli import main
from nrdseg.data.files import DataError
from nrdseg.data.labels import generated_palette
from nrdseg.deploy import predict as predict_module
from nrdseg.deploy.colors import label_png, legend_strip, overlay_png
from nrdseg.deploy.predict import predict_files
from nrdseg.evaluation.inference import infer_logits
from nrdseg.ops.normalize import normalize
from tests.conftest import CPU
from tests.tiny_checkpoints import PALETTE, tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return model.save_pretrained(tmp_path_factory.mktemp("predict") / "ckpt")


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _labels(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "P"
        return np.asarray(image)


def _expected(model, rgb: np.ndarray) -> np.ndarray:
    return model.predict(rgb).numpy()


def test_folder_file_and_glob_give_mirrored_palette_pngs_of_the_labels(model, tmp_path):
    images = {  # input -> expected output below labels/
        "data/a.png": (_rgb(45, 67, 0), "data/a.png"),
        "data/sub/a.png": (_rgb(45, 67, 1), "data/sub/a.png"),  # same stem, other folder
        "data/sub/b.bmp": (_rgb(33, 65, 2), "data/sub/b_bmp.png"),
        "data/sub/b.png": (_rgb(33, 65, 3), "data/sub/b_png.png"),  # same stem, other type
        "more/c.png": (_rgb(70, 101, 4), "more/c.png"),
        "loose.png": (_rgb(31, 20, 5), "loose.png"),
    }
    for name, (rgb, _) in images.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(tmp_path / name)
    (tmp_path / "more" / "notes.txt").write_text("not an image")  # a glob only takes images
    out = tmp_path / "out"
    summary = predict_files(
        model,
        [tmp_path / "data", str(tmp_path / "more" / "*"), tmp_path / "loose.png"],
        out_dir=out,
        batch_size=2,
        progress=False,
    )
    assert not summary.skipped
    written = sorted(p.relative_to(out / "labels").as_posix() for p in summary.written)
    assert written == sorted(target for _, target in images.values())
    for rgb, target in images.values():
        labels = _labels(out / "labels" / target)
        assert labels.shape == rgb.shape[:2]
        np.testing.assert_array_equal(labels, _expected(model, rgb))
    palette = Image.open(out / "labels" / "loose.png").getpalette()
    assert [palette[3 * i : 3 * i + 3] for i in range(len(PALETTE))] == PALETTE


def test_batched_prediction_matches_one_image_at_a_time(model, tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(_rgb(37, 53, 10 + i)).save(tmp_path / "in" / f"{i}.png")
    inputs = [tmp_path / "in"]
    one = predict_files(model, inputs, out_dir=tmp_path / "one", progress=False)
    three = predict_files(model, inputs, out_dir=tmp_path / "three", batch_size=3, progress=False)
    assert len(one.written) == len(three.written) == 3
    for a, b in zip(one.written, three.written, strict=True):
        np.testing.assert_array_equal(_labels(a), _labels(b))


def _save_with_orientation(rgb: np.ndarray, path, orientation: int) -> None:
    """Store the pixels turned so that EXIF ``orientation`` turns them back upright."""
    stored = np.rot90(rgb, k=-1 if orientation == 8 else 1)  # 6: 90 CW to view, 8: 90 CCW
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(model, tmp_path, orientation):
    upright = _rgb(40, 70, 20)
    _save_with_orientation(upright, tmp_path / "rotated.png", orientation)
    summary = predict_files(model, [tmp_path], out_dir=tmp_path / "out", progress=False)
    np.testing.assert_array_equal(_labels(summary.written[0]), _expected(model, upright))


def test_grayscale_rgba_and_16_bit_files_are_read_as_rgb(model, tmp_path):
    gray = _rgb(41, 59, 30)[:, :, 0]
    rgba = np.dstack([_rgb(41, 59, 31), np.full((41, 59), 7, np.uint8)])
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    out = tmp_path / "out" / "labels"
    predict_files(model, [tmp_path], out_dir=tmp_path / "out", progress=False)
    gray_rgb = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(_labels(out / "gray.png"), _expected(model, gray_rgb))
    np.testing.assert_array_equal(_labels(out / "gray16.png"), _expected(model, gray_rgb))
    np.testing.assert_array_equal(_labels(out / "rgba.png"), _expected(model, rgba[:, :, :3]))


@pytest.mark.parametrize("alpha", [None, 0.3])
def test_overlay_blends_image_and_palette_colours(model, tmp_path, alpha):
    rgb = _rgb(36, 44, 40)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    given = {} if alpha is None else {"alpha": alpha}
    predict_files(model, [tmp_path / "x.png"], out_dir=tmp_path / "out", overlay=True, **given)
    blend = np.asarray(Image.open(tmp_path / "out" / "overlays" / "x.png")).astype(int)
    colours = np.asarray(PALETTE)[_expected(model, rgb)]
    weight = 0.6 if alpha is None else alpha  # the documented default, stronger than 0.5
    expected = (1 - weight) * rgb.astype(int) + weight * colours
    # The legend needs more than 44 px: the image keeps its pixels, a white margin follows.
    assert np.abs(blend[:36, :44] - expected).max() <= 0.5 + 1e-6  # rounded to uint8
    assert (blend[:36, 44:] == 255).all()


def test_overlay_legend_strip_shows_the_present_classes_by_area():
    image = np.full((40, 120, 3), 128, np.uint8)
    labels = np.zeros((40, 120), np.int64)
    labels[:10] = 2  # class 2: 1200 px, class 0: 3600 px, class 1: none
    palette = [[128, 128, 128], [10, 200, 10], [200, 10, 10]]
    png = overlay_png(image, labels, palette, classes=["sky", "tree", "car"])
    with Image.open(io.BytesIO(png)) as opened:
        out = np.asarray(opened.convert("RGB"))
    assert out.shape[1] == 120 and out.shape[0] > 40 + 12  # a strip below the image
    strip = out[40:]
    found = {tuple(c) for c in strip.reshape(-1, 3)}
    assert (128, 128, 128) in found and (200, 10, 10) in found  # swatches of present classes
    assert (10, 200, 10) not in found  # an absent class has no entry
    first = np.argwhere((strip == (128, 128, 128)).all(-1))[:, 1].min()
    second = np.argwhere((strip == (200, 10, 10)).all(-1))[:, 1].min()
    assert first < second  # the larger class comes first
    unnamed = legend_strip(120, ["", ""], [palette[0], palette[2]])

    def dark(pixels):
        return int((pixels.astype(int).sum(-1) < 300).sum())

    assert dark(strip) > dark(unnamed) + 20  # the names are written
    plain = overlay_png(image, labels, palette, legend=False)
    with Image.open(io.BytesIO(plain)) as opened:
        assert opened.size == (120, 40)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        overlay_png(image, labels, palette, alpha=1.5)


def test_legend_wraps_names_into_rows_on_a_narrow_image():
    names = [f"a rather long class name {i}" for i in range(6)]
    colors = [[i * 40, 0, 0] for i in range(6)]
    narrow, wide = legend_strip(80, names, colors), legend_strip(2000, names, colors)
    # One entry is wider than 80 px: the strip widens to it (was: cut off at 80 px).
    assert 80 < narrow.shape[1] < 2000 and wide.shape[1] == 2000
    assert narrow.shape[0] > 3 * wide.shape[0]


@pytest.fixture
def folder_with_a_corrupt_file(tmp_path):
    Image.fromarray(_rgb(40, 40, 50)).save(tmp_path / "good.png")
    png = io.BytesIO()
    Image.fromarray(_rgb(40, 40, 51)).save(png, format="PNG")
    (tmp_path / "truncated.png").write_bytes(png.getvalue()[:200])
    (tmp_path / "text.jpg").write_text("not an image at all")
    return tmp_path


def test_corrupt_files_are_skipped_and_named(model, folder_with_a_corrupt_file, tmp_path):
    summary = predict_files(
        model, [folder_with_a_corrupt_file], out_dir=tmp_path / "out", progress=False
    )
    assert [p.name for p in summary.written] == ["good.png"]
    assert sorted(p.name for p, _ in summary.skipped) == ["text.jpg", "truncated.png"]
    assert all(p.name in reason for p, reason in summary.skipped)


def test_on_error_fail_stops_at_the_corrupt_file(model, folder_with_a_corrupt_file, tmp_path):
    with pytest.raises(DataError, match=r"text\.jpg: cannot read image"):
        predict_files(
            model,
            [folder_with_a_corrupt_file],
            out_dir=tmp_path / "out",
            on_error="fail",
            progress=False,
        )


def test_cli_reports_skips_and_fails_with_on_error_fail(
    checkpoint, folder_with_a_corrupt_file, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["predict", *CPU, str(checkpoint), str(folder_with_a_corrupt_file), "--out", str(out)]
    assert main(argv) == 3  # done in part: some inputs skipped
    printed = capsys.readouterr().out
    assert "wrote 1 label PNGs" in printed and "skipped 2" in printed and "truncated.png" in printed
    assert main([*argv, "--on-error", "fail"]) != 0
    assert "text.jpg: cannot read image" in capsys.readouterr().err


def test_cli_names_a_missing_input(checkpoint, tmp_path, capsys):
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path / "nope"), "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err


def test_tta_labels_are_the_argmax_of_infer_logits_over_flips_and_scales(
    model, checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setattr(predict_module, "TTA_SCALES", (0.5, 1.0))  # each new size costs warm-up
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return infer_logits(*args, **kwargs)

    monkeypatch.setattr(predict_module, "infer_logits", spy)
    rgb = _rgb(26, 41, 61)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--tta", "--device", "cpu"]) == 0
    assert calls == [{"scales": (0.5, 1.0), "flip": True}]
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    normalized = normalize(images, mean=model.mean, std=model.std)
    logits = infer_logits(model, normalized, scales=(0.5, 1.0), flip=True)
    np.testing.assert_array_equal(_labels(tmp_path / "o" / "labels" / "x.png"), logits.argmax(1)[0])


def test_more_than_256_classes_are_stored_as_16_bit_ids():
    labels = np.array([[0, 255], [256, 299]])
    stored = Image.open(io.BytesIO(label_png(labels, generated_palette(300))))
    np.testing.assert_array_equal(np.asarray(stored), labels)


# -- model.predict on in-memory images ------------------------------------------------------


def test_predict_accepts_non_contiguous_rgba_and_16_bit_arrays(model):
    rgb = _rgb(38, 46, 70)
    expected = _expected(model, rgb)
    flipped = rgb[:, ::-1]  # negative strides
    np.testing.assert_array_equal(model.predict(flipped).numpy(), _expected(model, flipped.copy()))
    channels_first = np.ascontiguousarray(rgb.transpose(2, 0, 1)).transpose(1, 2, 0)
    np.testing.assert_array_equal(model.predict(channels_first).numpy(), expected)
    rgba = np.dstack([rgb, np.zeros((38, 46), np.uint8)])
    np.testing.assert_array_equal(model.predict(rgba).numpy(), expected)
    np.testing.assert_array_equal(model.predict(rgb.astype(np.uint16) * 257).numpy(), expected)
    sixteen = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    gray = np.repeat(rgb[:, :, :1], 3, axis=2)
    np.testing.assert_array_equal(model.predict(sixteen).numpy(), _expected(model, gray))


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8 or uint16"),
        (np.zeros((8, 8, 2), np.uint8), "H x W x 3"),
        (torch.zeros(3, 8, 8, dtype=torch.int32), "uint8 RGB or normalized float"),
    ],
)
def test_predict_rejects_ambiguous_images(model, image, match):
    with pytest.raises((TypeError, ValueError), match=match):
        model.predict(image)
