"""The zoo's paper models, padding and cropping, the auxiliary head; bad input fails clearly.

Forward and backward at any size, for every zoo model, are the contract battery's
(``test_zoo_contract.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nrdseg
from tests.conftest import tiny_options

MODELS = nrdseg.list_models()


def test_zoo_has_the_paper_models():
    for name in (
        "nrd_r50",
        "nrd_r101",
        "nrd_x101",
        "nrd_r50_coord_only",
        "nrd_r50_guidance_only",
        "dlv3p_r50",
        "dlv3p_r50_d8",
        "bilinear_r50",
    ):
        assert name in MODELS


def test_loss_on_odd_size_matches_explicit_padding():
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50"), aux=False)
    model.train()
    images = torch.randn(2, 3, 50, 70)
    labels = torch.randint(0, 3, (2, 50, 70))
    torch.manual_seed(1)
    odd = model.loss(images, labels)["loss"]
    padded_images = torch.nn.functional.pad(images, (0, 26, 0, 14))
    padded_labels = torch.nn.functional.pad(labels, (0, 26, 0, 14), value=255)
    torch.manual_seed(1)
    explicit = model.loss(padded_images, padded_labels)["loss"]
    # avg_non_ignore=False: the caller's padded pixels count, the model's own never do
    torch.testing.assert_close(odd, explicit * (64 * 96) / (50 * 70))


def test_eval_forward_crops_the_padded_prediction():
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50")).eval()
    images = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        cropped = model(images)
        padded = model(torch.nn.functional.pad(images, (0, 26, 0, 14)))
    torch.testing.assert_close(cropped, padded[..., :50, :70])


def test_aux_head_only_in_training():
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50"))
    images = torch.randn(2, 3, 64, 64)
    labels = torch.zeros(2, 64, 64, dtype=torch.long)
    model.eval()
    assert "loss_aux" not in model.loss(images, labels)
    no_aux = nrdseg.create_model("nrd_r50", num_classes=3, aux=False, **tiny_options("nrd_r50"))
    assert no_aux.aux_head is None
    assert "loss_aux" not in no_aux.train().loss(images, labels)


def test_nrd_logits_come_out_at_stride_4():
    model = nrdseg.create_model("nrd_r50", num_classes=4, **tiny_options("nrd_r50")).eval()
    with torch.no_grad():
        logits, _ = model.decode_padded(torch.randn(1, 3, 64, 128))
    assert logits.shape == (1, 4, 16, 32)


def test_dilated_model_has_output_stride_8():
    model = nrdseg.create_model("dlv3p_r50_d8", num_classes=4, **tiny_options("dlv3p_r50_d8"))
    features = model.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in features.values()] == [16, 8, 8, 8]
    assert [s.stride for s in model.backbone.shapes.values()] == [4, 8, 8, 8]
    assert [b[0][0].dilation for b in list(model.neck.branches)[1:]] == [
        (12, 12),
        (24, 24),
        (36, 36),
    ]


def test_default_nrd_r50_builds_the_official_architecture():
    model = nrdseg.create_model("nrd_r50", num_classes=19)
    assert [s.channels for s in model.backbone.shapes.values()] == [256, 512, 1024, 2048]
    assert model.backbone.body.conv1[0].out_channels == 32  # deep stem of ResNetV1c
    assert model.neck.out_channels == 512
    assert model.decoder.input_norm.num_features == 18
    assert model.decoder.upsample_factor == 8
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 19, 64, 64)


def test_predict_accepts_pil_numpy_and_tensors():
    model = nrdseg.create_model("nrd_r50", num_classes=4, **tiny_options("nrd_r50"))
    rgb = np.random.default_rng(0).integers(0, 255, (45, 61, 3), dtype=np.uint8)
    from_numpy = model.predict(rgb)
    assert from_numpy.shape == (45, 61) and from_numpy.dtype == torch.int64
    assert torch.equal(model.predict(Image.fromarray(rgb)), from_numpy)
    assert torch.equal(model.predict(torch.from_numpy(rgb).permute(2, 0, 1)), from_numpy)
    assert model.predict(Image.fromarray(rgb[:, :, 0])).shape == (45, 61)  # grayscale
    assert model.predict([rgb, rgb]).shape == (2, 45, 61)
    assert model.training  # predict restores the mode


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.randn(64, 64), ValueError, "4-D"),
        (torch.randn(3, 64, 64), ValueError, "batch dimension"),
        (torch.randn(1, 4, 64, 64), ValueError, "3 \\(RGB\\) channels"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, "float"),
        (np.zeros((1, 3, 64, 64), dtype=np.float32), TypeError, "torch.Tensor"),
    ],
)
def test_bad_images_raise_clear_errors(images, error, match):
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50"))
    with pytest.raises(error, match=match):
        model(images)


def test_training_on_one_image_explains_the_batch_norm_limit():
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50")).train()
    with pytest.raises(ValueError, match="at least 2 images"):
        model.loss(torch.randn(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.long))


def test_bad_labels_raise_clear_errors():
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50"))
    images = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="differ in size"):
        model.loss(images, torch.zeros(1, 32, 64, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model.loss(images, torch.zeros(1, 64, 64))


@pytest.mark.parametrize("num_classes", [0, -3])
def test_num_classes_must_be_positive(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        nrdseg.create_model("nrd_r50", num_classes=num_classes, **tiny_options("nrd_r50"))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid models: .*nrd_r50"):
        nrdseg.create_model("nrd_r5", num_classes=3)
    with pytest.raises(TypeError, match="valid: .*use_guidance"):
        nrdseg.create_model("nrd_r50", num_classes=3, use_guidence=False)
    with pytest.raises(ValueError, match="unknown timm backbone"):
        nrdseg.create_model("nrd_r50", num_classes=3, backbone="resnet_nonexistent")


def test_config_rebuilds_the_same_architecture():
    model = nrdseg.create_model("nrd_r50_cm8", num_classes=6, **tiny_options("nrd_r50_cm8"))
    config = dict(model.config)
    clone = nrdseg.create_model(config.pop("name"), **config)
    assert clone.decoder.num_params == model.decoder.num_params
    assert clone.state_dict().keys() == model.state_dict().keys()
