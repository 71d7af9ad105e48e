"""ONNX, TorchScript and torch.export files: dynamic shapes, parity, metadata; torch.compile."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from nrdseg.cli import main
from nrdseg.deploy.export import META_FILE, export_model, load_exported
from nrdseg.deploy.verify import ParityReport, ParityRow, verify_export
from tests.tiny_checkpoints import PALETTE, tiny_model

EXAMPLE = (64, 96)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """Export through the CLI with --verify, once per format; (path, exit code, stdout)."""
    root = tmp_path_factory.mktemp("export")
    checkpoint = model.save_pretrained(root / "ckpt")
    cache = {}

    def get(fmt: str):
        if fmt not in cache:
            path = root / {"onnx": "m.onnx", "torchscript": "m.pt", "exported": "m.pt2"}[fmt]
            argv = ["export", str(checkpoint), "--format", fmt, "--out", str(path)]
            argv += ["--size", *map(str, EXAMPLE), "--verify"]
            with contextlib.redirect_stdout(io.StringIO()) as out:
                code = main(argv)
            cache[fmt] = (path, code, out.getvalue())
        return cache[fmt]

    return get


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported"])
def test_cli_export_verifies_against_pytorch(exported, fmt):
    path, code, printed = exported(fmt)
    assert code == 0, printed
    assert path.is_file()
    assert "PASS" in printed and "2 x 33 x 55" in printed  # batch 2 at an odd size


def test_onnx_runs_batches_smaller_than_one_cell(model, exported):
    """ONNX graphs take sizes below one encoder cell (32 px) too; .pt2 programs need 33+."""
    report = verify_export(model, exported("onnx")[0], format="onnx", shapes=[(3, 17, 5)])
    assert report.ok, report.table()


def test_onnx_graph_is_dynamic_and_carries_metadata(exported):
    path = exported("onnx")[0]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert session.get_outputs()[0].shape == ["batch", len(PALETTE), "height", "width"]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["palette"]) == PALETTE
    assert json.loads(meta["classes"]) == [f"class{i}" for i in range(len(PALETTE))]
    assert json.loads(meta["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(meta["std"]) == pytest.approx([0.229, 0.224, 0.225])
    assert meta["model"] == "nrd_r50" and meta["num_classes"] == str(len(PALETTE))


@pytest.mark.parametrize("fmt", ["torchscript", "exported"])
def test_torch_archives_carry_metadata(exported, fmt):
    with zipfile.ZipFile(exported(fmt)[0]) as archive:
        name = next(n for n in archive.namelist() if n.endswith(META_FILE))
        meta = json.loads(archive.read(name))
    assert json.loads(meta["palette"]) == PALETTE


def test_verify_reports_a_model_that_differs(model, exported):
    other = tiny_model(seed=1)
    report = verify_export(other, exported("onnx")[0], format="onnx", shapes=[(1, 64, 96)])
    assert not report.ok
    assert "FAIL" in report.table()


def test_bad_export_requests_are_explained(model, tmp_path):
    with pytest.raises(ValueError, match="must be saved as .pt2"):
        export_model(model, tmp_path / "m.pt", format="exported")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(model, tmp_path / "m.tfl", format="tflite")
    with pytest.raises(ValueError, match="opset applies to onnx only"):
        export_model(model, tmp_path / "m.pt", format="torchscript", opset=17)


@pytest.mark.parametrize("backend", [pytest.param("eager", marks=pytest.mark.slow), "aot_eager"])
def test_torch_compile_matches_eager(model, backend):
    """Two sizes: the second makes dynamo recompile with dynamic shapes."""
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend)
    for shape in [(1, 3, 64, 96), (2, 3, 45, 70)]:
        images = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(compiled(images), model(images))


def test_loaded_onnx_runner_labels_match_predict(model, exported):
    """What an ONNX user does: normalize with the stored mean/std, run, argmax."""
    path = exported("onnx")[0]
    rgb = np.random.default_rng(0).integers(0, 256, (50, 77, 3), dtype=np.uint8)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    mean, std = (np.asarray(json.loads(meta[k]), np.float32) for k in ("mean", "std"))
    images = ((rgb / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]
    labels = load_exported(path, format="onnx")(images).argmax(1)[0]
    np.testing.assert_array_equal(labels, model.predict(rgb).numpy())


def test_the_logit_bound_grows_with_the_logits_and_a_fail_names_what_missed():
    """A trained model's logits of ~100 differ by ~1e-4 in float32 (a fresh user's own-data
    export failed --verify at 100.000% agreement with a fixed 1e-4)."""
    trained = ParityRow(shape=(1, 64, 96), max_abs_logit=98.5, max_abs_diff=1.3e-4,
                        agreeing=6144, pixels=6144)  # fmt: skip
    assert ParityReport(rows=[trained], atol=1e-4, rtol=1e-5, min_agreement=0.9999).ok
    fixed = ParityReport(rows=[trained], atol=1e-4, rtol=0.0, min_agreement=0.9999)
    assert not fixed.ok
    assert "got max |diff| 1.30e-04 > 1.00e-04 at 1 x 64 x 96" in fixed.table()
    assert "agreement 100.000%" not in fixed.table().splitlines()[-1]  # that part passed
    small = ParityRow(shape=(1, 8, 8), max_abs_logit=0.03, max_abs_diff=1.3e-4,
                      agreeing=64, pixels=64)  # fmt: skip
    assert not ParityReport(rows=[small], atol=1e-4, rtol=1e-5, min_agreement=0.9999).ok
