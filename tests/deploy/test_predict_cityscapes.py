"""``nrdseg predict --format cityscapes``: label ids for the Cityscapes test server."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nrdseg
from nrdseg.cli import main
from nrdseg.data.cityscapes import id_to_train_id, train_id_to_id
from tests.conftest import CPU, tiny_options

labels_module = pytest.importorskip("cityscapesscripts.helpers.labels")


def test_table_matches_cityscapesscripts():
    table = train_id_to_id()
    for train_id, label in labels_module.trainId2label.items():
        if 0 <= train_id < 255:
            assert table[train_id] == label.id, label.name
    assert table[255] == labels_module.trainId2label[255].id == 0
    assert np.array_equal(id_to_train_id()[table[:19]], np.arange(19))


@pytest.fixture(scope="module")
def cityscapes_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = nrdseg.create_model("nrd_r50", num_classes=19, **tiny_options("nrd_r50")).eval()
    with torch.no_grad():  # labels that vary over the image
        model.decoder.controller[1].bias.normal_(0.0, 0.5)
    return model, model.save_pretrained(tmp_path_factory.mktemp("cs") / "ckpt")


def test_cli_writes_label_ids_named_by_image_id(cityscapes_checkpoint, tmp_path):
    model, checkpoint = cityscapes_checkpoint
    city = tmp_path / "leftImg8bit" / "test" / "berlin"
    city.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 72, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(city / "berlin_000000_000019_leftImg8bit.png")
    out = tmp_path / "out"
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path / "leftImg8bit"), "--out", str(out)]
    assert main([*argv, "--format", "cityscapes", "--device", "cpu"]) == 0
    (written,) = (out / "labels").rglob("*.png")
    assert written.name == "berlin_000000_000019_leftImg8bit.png"
    with Image.open(written) as image:
        assert image.mode == "L"
        ids = np.asarray(image)
    train_ids = model.predict(pixels).numpy()
    assert len(np.unique(train_ids)) > 1
    np.testing.assert_array_equal(ids, train_id_to_id()[train_ids])
    assert set(np.unique(ids)) <= {label.id for label in labels_module.labels if label.trainId < 19}


def test_other_class_counts_are_refused(tmp_path, capsys):
    model = nrdseg.create_model("nrd_r50", num_classes=5, **tiny_options("nrd_r50"))
    checkpoint = model.save_pretrained(tmp_path / "ckpt")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    argv = ["predict", *CPU, str(checkpoint), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--format", "cityscapes"]) == 2
    err = capsys.readouterr().err
    assert "maps the 19 Cityscapes training ids" in err and "predicts 5 classes" in err
