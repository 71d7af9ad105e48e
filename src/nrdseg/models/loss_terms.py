"""Decode losses for imbalanced classes: weighted cross-entropy, Dice, Focal, Lovasz, OHEM.

mmseg's model: ``loss_decode`` is a list of terms, each scaled by its ``loss_weight`` and
summed; an optional OHEM pixel sampler (mmseg's ``OHEMPixelSampler``) picks the pixels the
terms learn from. Dice, Focal (one-vs-rest sigmoid, as mmseg's) and Lovasz-Softmax are
segmentation_models_pytorch's ``losses`` (the ``nrdseg[losses]`` extra); cross-entropy is
:func:`nrdseg.ops.cross_entropy.cross_entropy` (mmseg's reduction, not torch's) and the
sampler is written here.

Every term skips ``ignore_index`` pixels. Terms hold no parameters or buffers, so a
model's ``state_dict`` does not depend on its loss.

A binary model (one logit, ``num_classes=1``, labels 0/1) gets each term's binary form:
cross-entropy becomes the binary cross-entropy of the sigmoid (mmseg's ``use_sigmoid``),
smp's losses run in their ``mode="binary"`` (Dice of the sigmoid, focal on the one logit,
the Lovasz hinge), OHEM reads the sigmoid's probability of the label. Settings that make
the loss identically 0 (every weight 0, a softmax over one logit, OHEM keeping no pixel)
are refused where they are built, naming the key.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nrdseg.ops.cross_entropy import cross_entropy
from nrdseg.ops.labels import IGNORE_INDEX, label_classes, two_class_logits
from nrdseg.utils.names import did_you_mean
from nrdseg.utils.optional import optional_import

#: Accepted by a term's ``class_weight``: computed from the training set's label counts.
MEDIAN_FREQUENCY = "median_frequency"


def _class_weight_tensor(class_weight: Sequence[float] | None) -> torch.Tensor | None:
    if class_weight is None:
        return None
    if class_weight == MEDIAN_FREQUENCY:
        raise ValueError(
            f"class_weight: {MEDIAN_FREQUENCY!r} must be resolved to numbers before the loss "
            "is built (nrdseg train does it from the training set)"
        )
    if isinstance(class_weight, str) or not isinstance(class_weight, Sequence):
        raise ValueError(
            f"class_weight: expected a list of numbers (one per class) or "
            f"{MEDIAN_FREQUENCY!r}, got {class_weight!r}"
        )
    weights = torch.tensor([float(w) for w in class_weight], dtype=torch.float32)
    if (weights < 0).any() or not torch.isfinite(weights).all():
        raise ValueError(f"class_weight: expected finite numbers >= 0, got {list(class_weight)}")
    if not (weights > 0).any():
        raise ValueError(
            f"class_weight: every weight is 0 ({list(class_weight)}), so every pixel's loss "
            "is 0 and nothing is learned; give the classes to learn a weight > 0"
        )
    return weights


class LossTerm(nn.Module):
    """One entry of ``loss_decode``: ``forward(logits, target)`` -> scalar x ``loss_weight``.

    ``logits`` float (B, C, H, W) at the label size; ``target`` int64 (B, H, W) with
    values in ``[0, C)`` (0/1 for a binary model's C = 1) or ``ignore_index``. ``weight``
    (optional, float (B, H, W)) is the OHEM sampler's 0/1 pixel mask; terms without
    per-pixel losses see unkept pixels as ignored. ``avg_non_ignore`` is the model's, for
    the terms that average over pixels. ``ignore_index`` is the model's ignore label
    (:func:`build_loss_term` passes it; not a ``loss_decode`` option). A term is built for
    a multi-class model; :meth:`bind` (called by :class:`DecodeLoss`) gives the model's
    mode, which a term checked alone (a config at load) does not know.
    """

    default_name = "loss"

    def __init__(
        self,
        *,
        loss_weight: float = 1.0,
        loss_name: str | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        weight = float(loss_weight)
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"loss_weight: expected a finite number >= 0, got {loss_weight!r}")
        self.loss_weight = weight
        self.loss_name = loss_name or self.default_name
        self.ignore_index = ignore_index

    def bind(self, *, binary: bool) -> None:
        """Take the model's mode (one logit or not); ValueError for an option it lacks."""

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        avg_non_ignore: bool = False,
    ) -> torch.Tensor:
        return self.loss_weight * self.compute(logits.float(), target, weight, avg_non_ignore)

    def compute(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        avg_non_ignore: bool,
    ) -> torch.Tensor:
        raise NotImplementedError


class CrossEntropyLoss(LossTerm):
    """mmseg's ``CrossEntropyLoss``: per-pixel CE with ``class_weight``, then the mean.

    ``avg_non_ignore`` picks the denominator (None: the model's ``avg_non_ignore``):
    True the labelled pixels, False all pixels, as in mmseg; class weights and the
    sampler's mask scale pixel losses without entering it.

    ``use_sigmoid`` (mmseg's key; None: follow the model) is the binary cross-entropy of a
    one-logit model's sigmoid, and softmax cross-entropy otherwise. Asking for softmax on
    a binary model (its loss would be 0: a softmax over one logit is constant), or for
    sigmoid on a multi-class one (mmseg's one-vs-rest form is not available), is refused.
    """

    default_name = "loss_ce"

    def __init__(
        self,
        *,
        loss_weight: float = 1.0,
        loss_name: str | None = None,
        class_weight: Sequence[float] | None = None,
        avg_non_ignore: bool | None = None,
        use_sigmoid: bool | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(loss_weight=loss_weight, loss_name=loss_name, ignore_index=ignore_index)
        self.class_weight = _class_weight_tensor(class_weight)
        self.avg_non_ignore = avg_non_ignore
        self.use_sigmoid = use_sigmoid

    def bind(self, *, binary: bool) -> None:
        if binary and self.use_sigmoid is False:
            raise ValueError(
                "use_sigmoid: false asks for a softmax over the one logit of this binary "
                "(num_classes: 1) model; it is constant, so the loss would be 0. Drop "
                "use_sigmoid (a binary model trains the sigmoid's binary cross-entropy), "
                "or set num_classes: 2 for a two-class softmax"
            )
        if not binary and self.use_sigmoid:
            raise ValueError(
                "use_sigmoid: true needs a one-logit binary model (num_classes: 1); a "
                "multi-class model trains the softmax cross-entropy (drop use_sigmoid)"
            )

    def compute(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        avg_non_ignore: bool,
    ) -> torch.Tensor:
        own = self.avg_non_ignore
        return cross_entropy(
            logits,
            target,
            ignore_index=self.ignore_index,
            avg_non_ignore=avg_non_ignore if own is None else own,
            class_weight=self.class_weight,
            weight=weight,
        )


def _smp_losses() -> Any:

    return optional_import("segmentation_models_pytorch.losses", extra="losses")


class _SmpTerm(LossTerm):
    """smp's loss ``smp_name`` in ``multiclass`` mode (``binary`` for a one-logit model);
    OHEM-unkept pixels are ignored."""

    smp_name = ""

    def __init__(
        self, *, loss_weight: float, loss_name: str | None, ignore_index: int, **options: Any
    ) -> None:
        super().__init__(loss_weight=loss_weight, loss_name=loss_name, ignore_index=ignore_index)
        if "class_weights" in options:  # given only where smp has them
            weights = _class_weight_tensor(options["class_weights"])
            options["class_weights"] = None if weights is None else weights.tolist()
        self.options = options
        self.loss = self._smp_loss("multiclass")

    def _smp_loss(self, mode: str) -> nn.Module:
        loss_class = getattr(_smp_losses(), self.smp_name)
        return loss_class(mode, ignore_index=self.ignore_index, **self.options)

    def bind(self, *, binary: bool) -> None:
        if binary and self.options.get("class_weights") is not None:
            raise ValueError(
                f"class_weight: smp's binary {self.smp_name} takes no class weights; drop "
                "class_weight for this binary (num_classes: 1) model"
                + (" (alpha weights class 1 against background)" if "alpha" in self.options else "")
            )
        self.loss = self._smp_loss("binary" if binary else "multiclass")

    def compute(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        avg_non_ignore: bool,
    ) -> torch.Tensor:
        if weight is not None:
            target = target.masked_fill(weight == 0, self.ignore_index)
        if not (target != self.ignore_index).any():
            # smp gives NaN (focal) or an empty tensor (lovasz) when nothing is labelled
            return logits.sum() * 0.0
        return self.loss(logits, target)


class DiceLoss(_SmpTerm):
    """Soft Dice per class over the batch, 1 - mean (``smp.losses.DiceLoss``).

    dice = (|P∩G| + smooth) / ((|P| + |G|) / 2 + smooth) with P the softmax probabilities
    and G the one-hot labels. Classes absent from the batch's labels add 0 and still count
    in the mean (smp's rule); ``class_weight`` makes it a weighted mean; ``log_loss`` uses
    -log(dice) instead of 1 - dice.
    """

    default_name = "loss_dice"
    smp_name = "DiceLoss"

    def __init__(
        self,
        *,
        loss_weight: float = 1.0,
        loss_name: str | None = None,
        class_weight: Sequence[float] | None = None,
        smooth: float = 0.0,
        log_loss: bool = False,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(
            loss_weight=loss_weight,
            loss_name=loss_name,
            ignore_index=ignore_index,
            class_weights=class_weight,
            smooth=smooth,
            log_loss=log_loss,
        )


class FocalLoss(_SmpTerm):
    """Sigmoid focal loss per class (one vs rest), mean over classes (``smp.losses.FocalLoss``).

    ``gamma`` focuses on hard pixels; ``alpha`` (None: off) weights positives against
    negatives; ``class_weight`` weights the per-class means.
    """

    default_name = "loss_focal"
    smp_name = "FocalLoss"

    def __init__(
        self,
        *,
        loss_weight: float = 1.0,
        loss_name: str | None = None,
        class_weight: Sequence[float] | None = None,
        gamma: float = 2.0,
        alpha: float | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(
            loss_weight=loss_weight,
            loss_name=loss_name,
            ignore_index=ignore_index,
            class_weights=class_weight,
            gamma=gamma,
            alpha=alpha,
        )


class LovaszLoss(_SmpTerm):
    """Lovasz-Softmax over the classes present in the labels (``smp.losses.LovaszLoss``)."""

    default_name = "loss_lovasz"
    smp_name = "LovaszLoss"

    def __init__(
        self,
        *,
        loss_weight: float = 1.0,
        loss_name: str | None = None,
        per_image: bool = False,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(
            loss_weight=loss_weight,
            loss_name=loss_name,
            ignore_index=ignore_index,
            per_image=per_image,
        )


LOSS_TYPES: dict[str, type[LossTerm]] = {
    "cross_entropy": CrossEntropyLoss,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "lovasz": LovaszLoss,
}


class OHEMPixelSampler:
    """mmseg's ``OHEMPixelSampler``: keep the hard pixels, ignore the easy ones.

    With ``thresh``, pixels whose softmax probability of their label is below
    ``max(thresh, p_k)`` are kept, ``p_k`` being the ``k``-th smallest such probability
    and ``k = min_kept x batch size``, so at least ``k`` pixels stay when that many are
    labelled. Without ``thresh``, exactly the ``k`` pixels with the largest cross-entropy.
    A binary model's probability of its label is the sigmoid's (1 - sigmoid for label 0).
    ``ignore_index`` is the model's ignore label (:func:`build_decode_loss` passes it).
    """

    def __init__(
        self,
        *,
        thresh: float | None = None,
        min_kept: int = 100000,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if thresh is not None and not 0.0 < thresh <= 1.0:
            raise ValueError(f"thresh: must be in (0, 1] or null, got {thresh}")
        if min_kept < 0:
            raise ValueError(f"min_kept: must be >= 0, got {min_kept}")
        if min_kept == 0 and thresh is None:
            raise ValueError(
                "min_kept: 0 without a thresh keeps no pixel, so the decode loss would be 0; "
                "give min_kept > 0 or a thresh"
            )
        self.thresh = thresh
        self.min_kept = min_kept
        self.ignore_index = ignore_index

    @torch.no_grad()
    def sample(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """float (B, H, W): 1 for kept pixels, 0 for the rest and for ignored ones."""
        kept = self.min_kept * target.shape[0]
        valid = target != self.ignore_index
        prob = (
            two_class_logits(logits.float())
            .softmax(1)
            .gather(1, target.masked_fill(~valid, 0)[:, None])[:, 0]
        )
        valid_prob = prob[valid]
        keep_valid = torch.zeros_like(valid_prob)
        if self.thresh is not None:
            threshold = torch.tensor(self.thresh, device=prob.device)
            if valid_prob.numel() > 0:
                ordered = valid_prob.sort().values
                threshold = torch.maximum(threshold, ordered[min(kept, ordered.numel() - 1)])
            keep_valid[valid_prob < threshold] = 1.0
        else:
            # lowest probability of the label = largest cross-entropy
            keep_valid[valid_prob.argsort()[:kept]] = 1.0
        weight = torch.zeros_like(prob)
        weight[valid] = keep_valid
        return weight


class DecodeLoss(nn.Module):
    """The sum of ``terms`` on the decoder's logits, after the optional OHEM ``sampler``.

    The terms and the sampler hold the ignore label they were built with
    (:func:`build_decode_loss` gives them the model's); ``binary`` (a one-logit model:
    each term's binary form) reaches every term; ``forward``'s ``avg_non_ignore``
    (default: the one given here) every term that does not set its own.

    ``forward(logits, target)`` returns each term's weighted value by its ``loss_name``.
    ValueError, naming ``key[i]`` (``loss_decode``: create_model's option), for no term,
    every ``loss_weight`` 0 (the loss would be 0), or an option the model's mode lacks.
    """

    def __init__(
        self,
        terms: Sequence[LossTerm],
        *,
        sampler: OHEMPixelSampler | None = None,
        avg_non_ignore: bool = False,
        binary: bool = False,
        key: str = "loss_decode",
    ) -> None:
        super().__init__()
        if not terms:
            raise ValueError(f"{key}: needs at least one loss")
        names = [term.loss_name for term in terms]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"{key}: loss_name {repeated[0]!r} is used twice; give each term its own loss_name"
            )
        if all(term.loss_weight == 0 for term in terms):
            raise ValueError(
                f"{key}: every term has loss_weight 0, so the decode loss is 0 and the "
                "decoder never learns; give at least one term a loss_weight > 0"
            )
        self.terms = nn.ModuleList(terms)
        self.sampler = sampler
        self.avg_non_ignore = avg_non_ignore
        self.binary = binary
        for index, term in enumerate(self.terms):
            try:
                term.bind(binary=binary)
            except ValueError as err:
                raise ValueError(f"{key}[{index}].{err}") from err

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, avg_non_ignore: bool | None = None
    ) -> dict[str, torch.Tensor]:
        weight = None if self.sampler is None else self.sampler.sample(logits, target)
        if avg_non_ignore is None:
            avg_non_ignore = self.avg_non_ignore
        return {term.loss_name: term(logits, target, weight, avg_non_ignore) for term in self.terms}


def term_parameters(kind: str) -> dict[str, inspect.Parameter]:
    """The ``loss_decode`` options of loss ``kind`` (a key of ``LOSS_TYPES``) with their
    annotations: the constructor's keywords but ``ignore_index``, which is the model's."""
    parameters = inspect.signature(LOSS_TYPES[kind].__init__, eval_str=True).parameters
    return {name: p for name, p in parameters.items() if name not in ("self", "ignore_index")}


def build_loss_term(
    spec: Mapping[str, Any],
    *,
    num_classes: int | None = None,
    ignore_index: int = IGNORE_INDEX,
    where: str = "loss_decode",
) -> LossTerm:
    """A term from ``{"type": "dice", "loss_weight": 0.5, ...}``; errors name the key.

    ``class_weight`` must hold one number per class when ``num_classes`` (the model's
    output channels) is given: 2 for a binary model's 1 (background, class 1).
    ``ignore_index`` is the model's ignore label.
    """
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"{where}: expected a mapping with a 'type', got {spec!r}")
    kind = spec["type"]
    if kind not in LOSS_TYPES:
        hint = did_you_mean(kind, LOSS_TYPES)
        raise ValueError(
            f"{where}.type: unknown loss {kind!r}{hint}; valid: {', '.join(LOSS_TYPES)}"
        )
    cls = LOSS_TYPES[kind]
    options = {k: v for k, v in spec.items() if k != "type"}
    valid = list(term_parameters(kind))
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ValueError(
            f"{where}.{unknown[0]}: unknown option for {kind!r}"
            f"{did_you_mean(unknown[0], valid)}; valid: {', '.join(valid)}"
        )
    class_weight = options.get("class_weight")
    sized = isinstance(class_weight, (list, tuple)) and num_classes is not None
    if sized and len(class_weight) != label_classes(num_classes):
        binary = " of this binary model: background, class 1" if num_classes == 1 else ""
        raise ValueError(
            f"{where}.class_weight: expected {label_classes(num_classes)} numbers (one per "
            f"class{binary}), got {len(class_weight)}"
        )
    try:
        return cls(**options, ignore_index=ignore_index)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err


def build_decode_loss(
    loss_decode: Sequence[Mapping[str, Any]] | None = None,
    sampler: Mapping[str, Any] | None = None,
    *,
    num_classes: int | None = None,
    ignore_index: int = IGNORE_INDEX,
    avg_non_ignore: bool = False,
    key: str = "loss_decode",
) -> DecodeLoss:
    """``create_model``'s ``loss_decode`` / ``sampler`` options as a :class:`DecodeLoss`.

    ``loss_decode`` None is cross-entropy alone; ``sampler`` is ``{"type": "ohem",
    "thresh": ..., "min_kept": ...}`` (``type`` optional) or None. ``num_classes`` is the
    model's output channels: 1 builds every term's binary form. Errors name ``key``.
    """
    specs = loss_decode if loss_decode is not None else [{"type": "cross_entropy"}]
    if isinstance(specs, Mapping):
        specs = [specs]
    terms = [
        build_loss_term(
            spec, num_classes=num_classes, ignore_index=ignore_index, where=f"{key}[{i}]"
        )
        for i, spec in enumerate(specs)
    ]
    pixel_sampler = None
    if sampler is not None:
        options = dict(sampler)
        if options.pop("type", "ohem") != "ohem":
            raise ValueError(f"sampler.type: only 'ohem' is available, got {sampler['type']!r}")
        try:
            pixel_sampler = OHEMPixelSampler(**options, ignore_index=ignore_index)
        except TypeError as err:
            raise ValueError(f"sampler: {err}; valid keys: type, thresh, min_kept") from err
        except ValueError as err:
            raise ValueError(f"sampler.{err}") from err
    return DecodeLoss(
        terms,
        sampler=pixel_sampler,
        avg_non_ignore=avg_non_ignore,
        binary=num_classes == 1,
        key=key,
    )


def median_frequency_weights(pixels: Sequence[int] | np.ndarray) -> list[float]:
    """Median frequency balancing (Eigen & Fergus 2015): ``median(f) / f_c`` per class.

    ``pixels`` counts the labelled pixels of each class; ``f_c`` is class c's share. Classes
    with no pixel (never seen in the counted samples) get the largest weight of the others.
    Raises ValueError when no class has a pixel.
    """
    counts = np.asarray(pixels, dtype=np.float64)
    present = counts > 0
    if not present.any():
        raise ValueError("class_weight: median_frequency needs labelled pixels; none were found")
    freq = counts / counts.sum()
    weights = np.zeros_like(freq)
    weights[present] = np.median(freq[present]) / freq[present]
    weights[~present] = weights[present].max()
    return [float(w) for w in weights]
