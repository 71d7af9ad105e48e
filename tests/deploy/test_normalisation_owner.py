"""Normalisation has one owner, the model: predict normalizes with its mean and std, and an
export carries them, whatever the ImageNet default is."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

import nrdseg
from nrdseg.deploy.export import export_metadata
from nrdseg.deploy.predict import predict_files
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD, normalize
from tests.tiny_checkpoints import tiny_model

MEAN, STD = (0.2, 0.5, 0.7), (0.1, 0.3, 0.2)


def test_predict_and_export_read_the_model_s_own_mean_and_std(tmp_path):
    model = tiny_model("dlv3p_r50", num_classes=3, mean=MEAN, std=STD)
    loaded = nrdseg.load_model(model.save_pretrained(tmp_path / "ckpt"))
    assert (loaded.mean, loaded.std) == (MEAN, STD)
    meta = export_metadata(loaded)
    assert json.loads(meta["mean"]) == list(MEAN) and json.loads(meta["std"]) == list(STD)
    rgb = np.random.default_rng(0).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    predict_files(loaded, [tmp_path / "a.png"], out_dir=tmp_path / "out", progress=False)
    with Image.open(tmp_path / "out" / "labels" / "a.png") as image:
        written = np.asarray(image)
    scaled = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    images = (scaled - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    imagenet = normalize(
        torch.from_numpy(rgb).permute(2, 0, 1)[None], mean=IMAGENET_MEAN, std=IMAGENET_STD
    )
    with torch.no_grad():
        expected = loaded(images).argmax(1)[0].numpy()
        other = loaded(imagenet).argmax(1)[0].numpy()
    np.testing.assert_array_equal(written, expected)
    assert (written != other).any()  # the default normalisation would have given others
