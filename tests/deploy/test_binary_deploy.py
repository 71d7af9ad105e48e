"""A binary model (one logit) in predict and export: 0/1 label PNGs with the 2 colours of
its classes, and an ONNX file whose logits, thresholded at 0, give the same labels."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from nrdseg.deploy import predict as predict_module
from nrdseg.deploy.export import export_model, load_exported
from nrdseg.deploy.predict import predict_files
from nrdseg.deploy.verify import verify_export
from nrdseg.evaluation.inference import infer_logits
from nrdseg.ops.normalize import normalize
from tests.models.test_zoo_contract import one_thread_onnxruntime  # noqa: F401 (a fixture)
from tests.tiny_checkpoints import tiny_model

CLASSES = ["background", "building"]
PALETTE = [[10, 10, 10], [250, 30, 30]]


@pytest.fixture(scope="module")
def model():
    """A tiny binary NRD whose logits change sign across an image (both classes occur)."""
    model = tiny_model("nrd_r50", num_classes=1)
    with torch.no_grad():
        middle = model(torch.randn(2, 3, 64, 64)).median()
        model.decoder.controller_out.bias[-1] -= middle  # b2, the last MLP layer's bias
    model.meta = {"classes": CLASSES, "palette": PALETTE}
    return model


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _normalized(model, rgb: np.ndarray) -> torch.Tensor:
    return normalize(torch.from_numpy(rgb).permute(2, 0, 1)[None], mean=model.mean, std=model.std)


@pytest.mark.parametrize("tta", [False, True])
def test_predict_writes_0_1_palette_pngs_of_the_sign(model, tmp_path, monkeypatch, tta):
    monkeypatch.setattr(predict_module, "TTA_SCALES", (0.5, 1.0))  # each new size costs warm-up
    rgb = _rgb(45, 67, 0)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    summary = predict_files(
        model, [tmp_path / "a.png"], out_dir=tmp_path / "out", overlay=True, tta=tta,
        progress=False,
    )  # fmt: skip
    assert [p.name for p in summary.written] == ["a.png"]
    with Image.open(tmp_path / "out" / "labels" / "a.png") as image:
        assert image.mode == "P" and image.getpalette()[:6] == [c for rgb in PALETTE for c in rgb]
        labels = np.asarray(image)
    with torch.no_grad():
        if tta:
            logits = infer_logits(model, _normalized(model, rgb), scales=(0.5, 1.0), flip=True)
        else:
            logits = model(_normalized(model, rgb))
    expected = (torch.sigmoid(logits[0, 0]) > 0.5).numpy().astype(np.uint8)
    assert set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(labels, expected)
    assert (tmp_path / "out" / "overlays" / "a.png").is_file()


def test_onnx_export_gives_the_one_logit_and_its_threshold(
    model,
    tmp_path,
    one_thread_onnxruntime,  # noqa: F811
):
    path = export_model(model, tmp_path / "m.onnx", format="onnx", example_size=(64, 96))
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["num_classes"] == "1" and json.loads(meta["classes"]) == CLASSES
    assert json.loads(meta["palette"]) == PALETTE
    assert "class 1 where logit > 0 (sigmoid > 0.5)" in meta["output"]
    images = torch.randn(2, 3, 45, 70)
    exported = load_exported(path, format="onnx")(images.numpy())
    assert exported.shape == (2, 1, 45, 70)
    labels = model.predict_labels(images).numpy()
    assert 0 < labels.sum() < labels.size
    agree = ((exported[:, 0] > 0) == labels).mean()
    assert agree > 0.9999, agree
    report = verify_export(model, path, format="onnx", shapes=[(1, 40, 33)])
    assert report.ok, report.table()
