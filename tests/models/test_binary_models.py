"""Binary models (``num_classes=1``): one logit everywhere, 0/1 labels from its sign, and the
settings that would leave a model nothing to learn refused when it is built."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nrdseg
from nrdseg.models.heads import DUpsamplingHead
from nrdseg.models.heads.dupsampling import fit_dupsampling_basis
from nrdseg.ops.label_patches import collect_patches
from tests.conftest import tiny_options
from tests.label_maps import random_label_maps
from tests.models.test_nrd_inference import _head
from tests.tiny_checkpoints import tiny_model


def binary(name: str = "nrd_r50", **overrides) -> nrdseg.Segmentor:
    return nrdseg.create_model(name, num_classes=1, **{**tiny_options(name), **overrides})


@pytest.mark.parametrize("name", ["nrd_r50", "dlv3p_r50"])
def test_one_logit_predicts_its_sign_in_every_path(name):
    model = tiny_model(name, num_classes=1).train()
    images = torch.randn(2, 3, 45, 70)
    labels = torch.randint(0, 2, (2, 45, 70))
    assert model(images).shape == (2, 1, 45, 70)
    model.loss(images, labels)["loss"].backward()
    model.eval()
    assert model.binary and model.label_classes == 2
    # Centre the random model's logits on 0, so that both signs (classes) occur.
    model.decoder.register_forward_hook(lambda module, args, out: out - out.median())
    with torch.no_grad():
        logits = model(images)
    expected = (logits[:, 0] > 0).to(torch.uint8)
    labels = model.predict_labels(images)
    assert labels.dtype == torch.uint8 and torch.equal(labels, expected)
    assert 0 < int(labels.sum()) < labels.numel()  # both classes occur: a real test of the sign
    rgb = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    assert set(model.predict(rgb).unique().tolist()) <= {0, 1}


def test_labels_of_a_binary_model_are_0_1_or_ignore():
    model = binary()
    labels = torch.full((1, 32, 32), 255)
    labels[0, 0, :2] = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"labels hold \[2\], not classes of this binary"):
        model.loss(torch.randn(1, 3, 32, 32), labels)


def test_save_and_load_keep_the_binary_model(tmp_path):
    model = binary().eval()
    model.meta = {"classes": ["background", "building"], "palette": [[0, 0, 0], [250, 0, 0]]}
    loaded = nrdseg.load_model(model.save_pretrained(tmp_path / "ckpt"))
    assert loaded.num_classes == 1 and loaded.meta["classes"] == ["background", "building"]
    images = torch.randn(1, 3, 33, 40)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


@pytest.mark.parametrize("options", [{}, {"use_guidance": False}, {"upsample_factor": 4}])
def test_nrd_folded_eval_path_with_one_class_equals_the_plain_path(options):
    head = _head(num_classes=1, **options)
    x, low = torch.randn(2, 8, 3, 4), torch.randn(2, 6, 24, 32)
    with torch.no_grad():
        fast, plain = head(x, low), head.forward_plain(x, low)
    assert fast.shape == plain.shape == (2, 1, 3 * head.upsample_factor, 4 * head.upsample_factor)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * plain.abs().max().item())


def test_dupsampling_basis_of_a_binary_head_reconstructs_class_1():
    maps = random_label_maps(6, size=(32, 32), num_classes=2, seed=4)
    basis = fit_dupsampling_basis(maps, ratio=4, num_classes=1, channels=16)
    assert basis.weight.shape == (16, 16) and basis.num_classes == 1
    patches = collect_patches(maps, ratio=4, complete_only=True)
    torch.testing.assert_close(basis.mean, (patches == 1).float().mean(0).flatten())
    head = DUpsamplingHead(in_channels=2, num_classes=1, channels=4, code_channels=16, ratio=4)
    head.load_basis(basis)
    codes = ((patches == 1).flatten(1).float() - basis.mean) @ basis.weight.T
    with torch.no_grad():
        painted = torch.pixel_shuffle(head.reconstruct(codes[:, :, None, None]), 4)
    # 16 directions span every 4 x 4 patch: the class-1 mask comes back, so 0.5 separates it
    assert torch.equal((painted[:, 0] > 0.5).long(), (patches == 1).long())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ignore_index": 0}, r"ignore_index: 0 is one of the class ids 0\.\.1"),
        ({"aux_weight": 0.0}, r"aux_weight: 0 trains the auxiliary head on nothing.*aux: false"),
        ({"aux_weight": -0.4}, r"aux_weight: expected a finite number >= 0, got -0\.4"),
        (
            {"loss_decode": [{"type": "cross_entropy", "use_sigmoid": False}]},
            r"loss_decode\[0\]\.use_sigmoid: false asks for a softmax over the one logit",
        ),
        (
            {"loss_decode": [{"type": "cross_entropy", "class_weight": [0.0, 0.0]}]},
            r"loss_decode\[0\]: class_weight: every weight is 0",
        ),
        (
            {"loss_decode": [{"type": "dice", "loss_weight": 0.0}]},
            r"loss_decode: every term has loss_weight 0",
        ),
        ({"sampler": {"min_kept": 0}}, r"sampler\.min_kept: 0 without a thresh keeps no pixel"),
    ],
)
def test_create_model_refuses_what_trains_on_nothing(overrides, message):
    with pytest.raises(ValueError, match=message):
        binary(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ignore_index": 2}, r"ignore_index: 2 is one of the class ids 0\.\.2"),
        (
            {"loss_decode": [{"type": "cross_entropy", "use_sigmoid": True}]},
            r"loss_decode\[0\]\.use_sigmoid: true needs a one-logit binary model",
        ),
        (
            {"loss_decode": [{"type": "focal", "loss_weight": -1.0}]},
            r"loss_decode\[0\]: loss_weight: expected a finite number >= 0",
        ),
    ],
)
def test_create_model_refuses_them_for_multi_class_models_too(overrides, message):
    with pytest.raises(ValueError, match=message):
        nrdseg.create_model("nrd_r50", num_classes=3, **{**tiny_options("nrd_r50"), **overrides})
