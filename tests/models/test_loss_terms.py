"""Each decode loss against a slow reference written from its definition, ignored pixels included."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from nrdseg.models.loss_terms import (
    OHEMPixelSampler,
    build_decode_loss,
    build_loss_term,
    median_frequency_weights,
)

IGNORE = 255


def _case(seed: int = 0, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, C, 5, 6) logits and labels with a band of ignored pixels and class 2 rare."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 5, 6, generator=gen) * 2
    labels = torch.randint(0, 2, (2, 5, 6), generator=gen)
    labels[0, 0, :3] = 2
    labels[:, 4, :] = IGNORE
    labels[1, :, 0] = IGNORE
    return logits, labels


def _pixels(logits: torch.Tensor, labels: torch.Tensor) -> list[tuple[list[float], int]]:
    """Every pixel as (logits of the classes, label), in a plain Python list."""
    b, c, h, w = logits.shape
    return [
        ([float(logits[i, k, y, x]) for k in range(c)], int(labels[i, y, x]))
        for i in range(b)
        for y in range(h)
        for x in range(w)
    ]


def _softmax(z: list[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# -- references --------------------------------------------------------------------------
def _softmax_of_label(z: list[float], y: int) -> float:
    return _softmax(z)[y]


def reference_cross_entropy(
    logits,
    labels,
    *,
    class_weight=None,
    keep=None,
    avg_non_ignore=True,
    probability=_softmax_of_label,
):
    """-log p(label) x the label's class weight; ``probability(z, y)`` is the model's
    probability of label ``y`` from the pixel's logits."""
    pixels = _pixels(logits, labels)
    keep_flat = [1.0] * len(pixels) if keep is None else [float(v) for v in keep.flatten()]
    total, valid = 0.0, 0
    for (z, y), k in zip(pixels, keep_flat, strict=True):
        if y == IGNORE:
            continue
        valid += 1
        w = 1.0 if class_weight is None else class_weight[y]
        total += -math.log(probability(z, y)) * w * k
    return total / (max(valid, 1) if avg_non_ignore else len(pixels))


def reference_dice(logits, labels, *, class_weight=None, smooth=0.0):
    """1 - (|P∩G| + s) / ((|P| + |G|) / 2 + s) per class over the batch (smp >= 0.6's
    smoothing); classes absent from the labels add 0."""
    pixels = [(_softmax(z), y) for z, y in _pixels(logits, labels) if y != IGNORE]
    classes = logits.shape[1]
    losses = []
    for c in range(classes):
        inter = sum(p[c] for p, y in pixels if y == c)
        size_p = sum(p[c] for p, _ in pixels)
        size_g = sum(1 for _, y in pixels if y == c)
        dice = (inter + smooth) / ((size_p + size_g) / 2 + smooth)
        losses.append(0.0 if size_g == 0 else 1.0 - dice)
    weights = class_weight or [1.0] * classes
    return sum(w * v for w, v in zip(weights, losses, strict=True)) / sum(weights)


def reference_focal(logits, labels, *, gamma=2.0, alpha=None, class_weight=None):
    """Per class, sigmoid focal loss -a (1 - p_t)^gamma log p_t averaged over labelled pixels."""
    pixels = [(z, y) for z, y in _pixels(logits, labels) if y != IGNORE]
    classes = logits.shape[1]
    losses = []
    for c in range(classes):
        values = []
        for z, y in pixels:
            positive = y == c
            p = _sigmoid(z[c])
            pt = p if positive else 1.0 - p
            a = 1.0 if alpha is None else (alpha if positive else 1.0 - alpha)
            values.append(-a * (1.0 - pt) ** gamma * math.log(pt))
        losses.append(sum(values) / len(values))
    weights = class_weight or [1.0] * classes
    return sum(w * v for w, v in zip(weights, losses, strict=True)) / sum(weights)


def reference_lovasz(logits, labels):
    """Lovasz extension of the Jaccard loss |M| / |G ∪ M| (Berman et al.), from its definition,
    averaged over the classes present in the labels."""
    pixels = [(_softmax(z), y) for z, y in _pixels(logits, labels) if y != IGNORE]
    losses = []
    for c in range(logits.shape[1]):
        truth = {i for i, (_, y) in enumerate(pixels) if y == c}
        if not truth:
            continue
        errors = [abs((1.0 if y == c else 0.0) - p[c]) for p, y in pixels]
        order = sorted(range(len(pixels)), key=lambda i: -errors[i])

        def jaccard_loss(mistakes: set[int], truth: set[int] = truth) -> float:
            return len(mistakes) / len(truth | mistakes) if mistakes else 0.0

        value, chosen, previous = 0.0, set(), 0.0
        for i in order:
            chosen.add(i)
            current = jaccard_loss(chosen)
            value += errors[i] * (current - previous)
            previous = current
        losses.append(value)
    return sum(losses) / len(losses)


def reference_ohem(logits, labels, *, thresh, min_kept, probability=_softmax_of_label):
    """mmseg's rule: keep label probabilities below max(thresh, k-th smallest), k = min_kept x B.

    ``probability(z, y)``: the model's probability of label ``y`` from the pixel's logits.
    """
    probs = [
        probability(z, y) if y != IGNORE else None for z, y in _pixels(logits, labels)
    ]  # flat, in (b, y, x) order
    valid = sorted(p for p in probs if p is not None)
    kept = min_kept * logits.shape[0]
    if thresh is None:
        cut = valid[kept - 1] if kept <= len(valid) else math.inf
        keep = [p is not None and p <= cut for p in probs]
    else:
        threshold = max(thresh, valid[min(kept, len(valid) - 1)])
        keep = [p is not None and p < threshold for p in probs]
    return torch.tensor(keep, dtype=torch.float32).reshape(labels.shape)


# -- tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("avg_non_ignore", [True, False])
@pytest.mark.parametrize("class_weight", [None, [0.5, 1.0, 4.0]])
def test_cross_entropy_matches_reference(avg_non_ignore, class_weight):
    logits, labels = _case()
    term = build_loss_term(
        {"type": "cross_entropy", "class_weight": class_weight, "avg_non_ignore": avg_non_ignore}
    )
    expected = reference_cross_entropy(
        logits, labels, class_weight=class_weight, avg_non_ignore=avg_non_ignore
    )
    assert float(term(logits, labels)) == pytest.approx(expected, rel=1e-5)


def test_unweighted_cross_entropy_is_torch_mean_over_labelled_pixels():
    logits, labels = _case()
    term = build_loss_term({"type": "cross_entropy", "avg_non_ignore": True})
    expected = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE)
    assert float(term(logits, labels)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("model_setting", [True, False])
def test_cross_entropy_takes_the_model_avg_non_ignore_unless_given(model_setting):
    logits, labels = _case()
    loss = build_decode_loss(
        [
            {"type": "cross_entropy"},
            {"type": "cross_entropy", "avg_non_ignore": True, "loss_name": "loss_ce_own"},
        ],
        avg_non_ignore=model_setting,
    )
    terms = loss(logits, labels)
    assert float(terms["loss_ce"]) == pytest.approx(
        reference_cross_entropy(logits, labels, avg_non_ignore=model_setting), rel=1e-5
    )
    assert float(terms["loss_ce_own"]) == pytest.approx(
        reference_cross_entropy(logits, labels, avg_non_ignore=True), rel=1e-5
    )


@pytest.mark.parametrize("class_weight", [None, [1.0, 2.0, 0.5]])
@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_dice_matches_reference(class_weight, smooth):
    logits, labels = _case()
    term = build_loss_term({"type": "dice", "class_weight": class_weight, "smooth": smooth})
    expected = reference_dice(logits, labels, class_weight=class_weight, smooth=smooth)
    assert float(term(logits, labels)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("gamma", "alpha", "class_weight"), [(2.0, None, None), (1.5, 0.25, [1.0, 3.0, 0.5])]
)
def test_focal_matches_reference(gamma, alpha, class_weight):
    logits, labels = _case()
    term = build_loss_term(
        {"type": "focal", "gamma": gamma, "alpha": alpha, "class_weight": class_weight}
    )
    expected = reference_focal(logits, labels, gamma=gamma, alpha=alpha, class_weight=class_weight)
    assert float(term(logits, labels)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_lovasz_matches_reference(seed):
    logits, labels = _case(seed)
    term = build_loss_term({"type": "lovasz"})
    assert float(term(logits, labels)) == pytest.approx(reference_lovasz(logits, labels), rel=1e-5)


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 3), (0.3, 10), (0.99, 1), (None, 7)])
def test_ohem_sampler_matches_reference(thresh, min_kept):
    logits, labels = _case()
    keep = OHEMPixelSampler(thresh=thresh, min_kept=min_kept).sample(logits, labels)
    expected = reference_ohem(logits, labels, thresh=thresh, min_kept=min_kept)
    assert torch.equal(keep, expected)
    assert 0 < keep.sum() < (labels != IGNORE).sum()  # the cases keep some, not all


def test_ohem_keeps_at_least_min_kept_per_image():
    logits, labels = _case()
    keep = OHEMPixelSampler(thresh=1e-6, min_kept=5).sample(logits, labels)
    assert keep.sum() == 10  # nothing is that confident: the 2 x 5 hardest stay


def test_ohem_cross_entropy_matches_mmseg_reduction():
    """The sampler's mask weights the pixel losses; the mean keeps mmseg's denominator."""
    logits, labels = _case()
    for avg_non_ignore in (True, False):
        loss = build_decode_loss(
            [{"type": "cross_entropy", "avg_non_ignore": avg_non_ignore}],
            {"thresh": 0.7, "min_kept": 3},
        )
        keep = reference_ohem(logits, labels, thresh=0.7, min_kept=3)
        expected = reference_cross_entropy(logits, labels, keep=keep, avg_non_ignore=avg_non_ignore)
        assert float(loss(logits, labels)["loss_ce"]) == pytest.approx(expected, rel=1e-5)


def test_ohem_makes_unkept_pixels_ignored_for_dice():
    logits, labels = _case()
    loss = build_decode_loss([{"type": "dice"}], {"thresh": 0.7, "min_kept": 3})
    keep = reference_ohem(logits, labels, thresh=0.7, min_kept=3)
    masked = labels.masked_fill(keep == 0, IGNORE)
    assert float(loss(logits, labels)["loss_dice"]) == pytest.approx(
        reference_dice(logits, masked), rel=1e-5
    )


@pytest.mark.parametrize("kind", ["cross_entropy", "dice", "focal", "lovasz"])
def test_ignored_pixels_get_no_gradient(kind):
    logits, labels = _case()
    logits.requires_grad_(True)
    build_loss_term({"type": kind})(logits, labels).backward()
    ignored = (labels == IGNORE)[:, None].expand_as(logits)
    assert logits.grad[ignored].abs().max() == 0
    assert logits.grad[~ignored].abs().max() > 0


@pytest.mark.parametrize("kind", ["cross_entropy", "dice", "focal", "lovasz"])
def test_all_ignored_gives_zero_with_a_graph(kind):
    logits, labels = _case()
    logits.requires_grad_(True)
    value = build_loss_term({"type": kind})(logits, torch.full_like(labels, IGNORE))
    assert value.shape == () and value.item() == 0.0
    value.backward()


def test_terms_combine_with_their_weights_and_another_ignore_index():
    logits, labels = _case()
    labels = labels.masked_fill(labels == IGNORE, 7)
    loss = build_decode_loss(
        [
            {"type": "cross_entropy", "loss_weight": 1.0},
            {"type": "lovasz", "loss_weight": 0.5},
            {"type": "dice", "loss_weight": 2.0, "loss_name": "loss_dice_2"},
        ],
        ignore_index=7,
        avg_non_ignore=True,
    )
    terms = loss(logits, labels)
    standard = labels.masked_fill(labels == 7, IGNORE)
    assert list(terms) == ["loss_ce", "loss_lovasz", "loss_dice_2"]
    assert float(terms["loss_ce"]) == pytest.approx(reference_cross_entropy(logits, standard))
    assert float(terms["loss_lovasz"]) == pytest.approx(0.5 * reference_lovasz(logits, standard))
    assert float(terms["loss_dice_2"]) == pytest.approx(2.0 * reference_dice(logits, standard))


def test_ohem_sampler_skips_another_ignore_index_given_to_the_loss():
    """The model's ignore label reaches the sampler too, not only the terms."""
    logits, labels = _case()
    loss = build_decode_loss(
        [{"type": "cross_entropy", "avg_non_ignore": True}],
        {"thresh": 0.7, "min_kept": 3},
        ignore_index=7,
    )
    keep = reference_ohem(logits, labels, thresh=0.7, min_kept=3)
    expected = reference_cross_entropy(logits, labels, keep=keep)
    seven = labels.masked_fill(labels == IGNORE, 7)
    assert float(loss(logits, seven)["loss_ce"]) == pytest.approx(expected, rel=1e-5)


def test_median_frequency_weights():
    # shares 100/160, 10/160, -, 50/160: median 50/160; the unseen class gets the largest
    assert median_frequency_weights([100, 10, 0, 50]) == pytest.approx([0.5, 5.0, 5.0, 1.0])
    with pytest.raises(ValueError, match="median_frequency"):
        median_frequency_weights([0, 0])


@pytest.mark.parametrize(
    ("spec", "sampler", "message"),
    [
        (
            {"type": "dise"},
            None,
            r"loss_decode\[0\]\.type: unknown loss 'dise' \(did you mean dice\?\); valid: cross_",
        ),
        ({"type": "focal", "gama": 2}, None, r"loss_decode\[0\]\.gama: unknown option"),
        ({"type": "dice", "class_weight": [1, 2]}, None, r"class_weight: expected 3 numbers"),
        ({"type": "cross_entropy", "class_weight": [1, -1, 1]}, None, r"finite numbers >= 0"),
        ({"type": "cross_entropy"}, {"thresh": 1.5}, r"thresh: must be in \(0, 1\]"),
        ({"type": "cross_entropy"}, {"type": "random"}, r"sampler.type: only 'ohem'"),
    ],
)
def test_bad_specs_name_the_key(spec, sampler, message):
    with pytest.raises(ValueError, match=message):
        build_decode_loss([spec], sampler, num_classes=3)


def test_repeated_loss_names_are_refused():
    with pytest.raises(ValueError, match="loss_name 'loss_ce' is used twice"):
        build_decode_loss([{"type": "cross_entropy"}, {"type": "cross_entropy"}])


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch.losses", None)
    with pytest.raises(ImportError, match=r"pip install 'nrdseg\[losses\]'"):
        build_loss_term({"type": "dice"})
    build_loss_term({"type": "cross_entropy"})  # needs no extra
