"""Overlays show every class and their whole legend (issue 21, item 12: class 0 was black,
invisible over dark frames, and the legend was cut off on small images)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from nrdseg.data.camvid import CAMVID_PALETTE
from nrdseg.data.cityscapes import CITYSCAPES_PALETTE
from nrdseg.data.labels import generated_palette
from nrdseg.deploy.colors import legend_strip, model_palette, overlay_png
from nrdseg.deploy.predict import predict_files
from tests.tiny_checkpoints import tiny_model


def _read(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_class_0_of_a_generated_palette_shows_over_a_dark_image():
    palette = generated_palette(256)
    assert len({tuple(c) for c in palette}) == 256  # still distinct
    dark = np.full((8, 8, 3), 20, np.uint8)
    labels = np.zeros((8, 8), np.int64)
    blend = _read(overlay_png(dark, labels, palette[:2], legend=False))
    # Black (the colour map's own class 0) left the pixels at 0.4 * 20 = 8: no colour.
    assert (np.abs(blend - 8).max(axis=-1) > 60).all()
    assert palette[1:] == [list(rgb) for rgb in _voc_map(256)[1:]]  # the others unchanged


def _voc_map(count: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map, written out independently of nrdseg's."""
    colours = []
    for index in range(count):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return colours


def test_dataset_palettes_are_kept_as_they_are():
    for palette in (CITYSCAPES_PALETTE, CAMVID_PALETTE):
        assert model_palette({"palette": palette}, len(palette)) == palette
    assert model_palette({}, 3) == generated_palette(3)


def test_the_legend_of_a_64_x_48_overlay_shows_every_name_whole(tmp_path):
    model = tiny_model()
    names = ["background", "road surface", "lane marking", "parked vehicle", "building wall"]
    model.meta = {"classes": names}  # and no palette
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "f.png")
    predict_files(
        model, [tmp_path / "f.png"], out_dir=tmp_path / "out", overlay=True, progress=False
    )
    with Image.open(tmp_path / "out" / "labels" / "f.png") as written:
        labels = np.asarray(written)
    with Image.open(tmp_path / "out" / "overlays" / "f.png") as written:
        overlay = np.asarray(written.convert("RGB")).astype(int)
    present = np.unique(labels)
    names = [model.meta["classes"][i] for i in present]
    palette = generated_palette(5)
    # Each entry alone on a wide strip: its dark (text and outline) pixels, all of them.
    alone = sum(
        int((legend_strip(2000, [n], [palette[i]]).sum(-1) < 200).sum())
        for n, i in zip(names, present, strict=True)
    )
    legend = overlay[48:]
    assert int((legend.sum(-1) < 200).sum()) == alone  # nothing cut off
    assert (legend[:, -1] == 255).all()  # nothing reaches the right edge
    assert overlay.shape[1] > 64  # every name needs more than 64 px: a margin was added
    assert (overlay[:48, 64:] == 255).all()
