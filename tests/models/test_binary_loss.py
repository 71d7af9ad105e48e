"""A binary model's losses (one logit, labels 0/1): each term's binary form against a slow
reference written from its definition, and the auxiliary head's loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import nrdseg
from nrdseg.models.loss_terms import OHEMPixelSampler, build_decode_loss
from nrdseg.ops.resize import resize
from tests.conftest import tiny_options
from tests.models.test_loss_terms import (
    IGNORE,
    _pixels,
    _sigmoid,
    reference_cross_entropy,
    reference_ohem,
)


def _binary_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, 1, 5, 6) logits and 0/1 labels with a band of ignored pixels."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 1, 5, 6, generator=gen) * 2
    labels = torch.randint(0, 2, (2, 5, 6), generator=gen)
    labels[:, 4, :] = IGNORE
    labels[1, :, 0] = IGNORE
    return logits, labels


def _labelled(logits, labels) -> list[tuple[float, int]]:
    return [(z[0], y) for z, y in _pixels(logits, labels) if y != IGNORE]


def _sigmoid_of_label(z: list[float], y: int) -> float:
    return _sigmoid(z[0]) if y == 1 else 1.0 - _sigmoid(z[0])


def reference_bce(logits, labels, **options):
    """-[y log s + (1 - y) log(1 - s)], s = sigmoid(z), times the label's class weight."""
    return reference_cross_entropy(logits, labels, probability=_sigmoid_of_label, **options)


def reference_binary_dice(logits, labels, *, smooth=0.0):
    """1 - (|P∩G| + s) / ((|P| + |G|) / 2 + s) of the sigmoid over the batch; 0 without G."""
    pixels = [(_sigmoid(z), y) for z, y in _labelled(logits, labels)]
    inter = sum(p for p, y in pixels if y == 1)
    size_p, size_g = sum(p for p, _ in pixels), sum(y for _, y in pixels)
    return 0.0 if size_g == 0 else 1.0 - (inter + smooth) / ((size_p + size_g) / 2 + smooth)


def reference_binary_focal(logits, labels, *, gamma=2.0, alpha=None):
    """-a (1 - p_t)^gamma log p_t of the sigmoid, averaged over the labelled pixels."""
    values = []
    for z, y in _labelled(logits, labels):
        p = _sigmoid(z)
        pt = p if y == 1 else 1.0 - p
        a = 1.0 if alpha is None else (alpha if y == 1 else 1.0 - alpha)
        values.append(-a * (1.0 - pt) ** gamma * math.log(pt))
    return sum(values) / len(values)


def reference_lovasz_hinge(logits, labels):
    """Berman et al.'s Lovasz hinge: the Lovasz extension of |M| / |G ∪ M| (G: the pixels of
    class 1) on the hinge errors max(0, 1 - z s), s = +1 for class 1 and -1 for 0."""
    pixels = _labelled(logits, labels)
    truth = {i for i, (_, y) in enumerate(pixels) if y == 1}
    errors = [max(0.0, 1.0 - z * (2 * y - 1)) for z, y in pixels]
    value, chosen, previous = 0.0, set(), 0.0
    for i in sorted(range(len(pixels)), key=lambda i: -errors[i]):
        chosen.add(i)
        current = len(chosen) / len(truth | chosen)
        value += errors[i] * (current - previous)
        previous = current
    return value


def _binary_loss(spec: dict, sampler: dict | None = None, **options) -> torch.nn.Module:
    return build_decode_loss([spec], sampler, num_classes=1, **options)


@pytest.mark.parametrize("avg_non_ignore", [True, False])
@pytest.mark.parametrize("class_weight", [None, [0.5, 3.0]])
def test_binary_cross_entropy_matches_reference(avg_non_ignore, class_weight):
    logits, labels = _binary_case()
    loss = _binary_loss({"type": "cross_entropy", "class_weight": class_weight})
    value = loss(logits, labels, avg_non_ignore=avg_non_ignore)["loss_ce"]
    expected = reference_bce(
        logits, labels, class_weight=class_weight, avg_non_ignore=avg_non_ignore
    )
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_binary_cross_entropy_is_torchs_bce_with_logits_over_labelled_pixels():
    logits, labels = _binary_case(1)
    valid = labels != IGNORE
    expected = F.binary_cross_entropy_with_logits(logits[:, 0][valid], labels[valid].float())
    value = _binary_loss({"type": "cross_entropy"}, avg_non_ignore=True)(logits, labels)
    assert float(value["loss_ce"]) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_binary_dice_matches_reference(smooth):
    logits, labels = _binary_case()
    value = _binary_loss({"type": "dice", "smooth": smooth})(logits, labels)["loss_dice"]
    assert float(value) == pytest.approx(reference_binary_dice(logits, labels, smooth=smooth))


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (1.5, 0.25)])
def test_binary_focal_matches_reference(gamma, alpha):
    logits, labels = _binary_case()
    spec = {"type": "focal", "gamma": gamma, "alpha": alpha}
    value = _binary_loss(spec)(logits, labels)["loss_focal"]
    expected = reference_binary_focal(logits, labels, gamma=gamma, alpha=alpha)
    assert float(value) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_lovasz_matches_reference(seed):
    logits, labels = _binary_case(seed)
    value = _binary_loss({"type": "lovasz"})(logits, labels)["loss_lovasz"]
    assert float(value) == pytest.approx(reference_lovasz_hinge(logits, labels), rel=1e-5)


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 3), (None, 7)])
def test_binary_ohem_keeps_pixels_by_the_sigmoid(thresh, min_kept):
    logits, labels = _binary_case()
    keep = OHEMPixelSampler(thresh=thresh, min_kept=min_kept).sample(logits, labels)
    expected = reference_ohem(
        logits, labels, thresh=thresh, min_kept=min_kept, probability=_sigmoid_of_label
    )
    assert torch.equal(keep, expected)
    assert 0 < keep.sum() < (labels != IGNORE).sum()
    loss = _binary_loss({"type": "cross_entropy"}, {"thresh": thresh, "min_kept": min_kept})
    value = loss(logits, labels, avg_non_ignore=True)["loss_ce"]
    assert float(value) == pytest.approx(reference_bce(logits, labels, keep=expected), rel=1e-5)


@pytest.mark.parametrize("kind", ["cross_entropy", "dice", "focal", "lovasz"])
def test_binary_terms_learn_from_labelled_pixels_only(kind):
    logits, labels = _binary_case()
    logits.requires_grad_(True)
    value = next(iter(_binary_loss({"type": kind})(logits, labels).values()))
    value.backward()
    ignored = (labels == IGNORE)[:, None]
    assert value.item() > 0 and logits.grad[~ignored].abs().max() > 0
    assert logits.grad[ignored].abs().max() == 0


@pytest.mark.parametrize("kind", ["dice", "focal"])
def test_binary_smp_terms_refuse_class_weights_naming_the_key(kind):
    with pytest.raises(ValueError, match=r"loss_decode\[0\]\.class_weight: smp's binary"):
        _binary_loss({"type": kind, "class_weight": [1.0, 2.0]})


def test_binary_model_trains_bce_on_both_heads():
    """The decode and the auxiliary loss of a one-logit model are binary cross-entropies
    (a softmax over its one logit would make both 0)."""
    model = nrdseg.create_model(
        "nrd_r50", num_classes=1, avg_non_ignore=True, **tiny_options("nrd_r50")
    ).train()
    images = torch.randn(2, 3, 40, 52)
    labels = torch.randint(0, 2, (2, 40, 52))
    labels[:, :4] = IGNORE
    torch.manual_seed(3)
    losses = model.loss(images, labels)
    torch.manual_seed(3)  # the same dropout masks
    with torch.no_grad():
        main, aux = model.decode_padded(F.pad(images, (0, 12, 0, 24)))
    at_labels = [resize(x, (64, 64))[..., :40, :52] for x in (main, aux)]
    assert main.shape[1] == aux.shape[1] == 1
    for key, logits in zip(("loss_main", "loss_aux"), at_labels, strict=True):
        value = losses[key].item()
        assert value == pytest.approx(reference_bce(logits, labels), rel=1e-4), key
        assert value > 0.1
    losses["loss"].backward()
    assert model.decoder.controller_out.weight.grad.abs().max() > 0
