"""Encoder (backbone + neck) + decoder + auxiliary head, with the loss and any-size inference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nrdseg.checkpoint.format import save_pretrained
from nrdseg.checkpoint.hub import push_to_hub
from nrdseg.models.heads.base import DecodeHead
from nrdseg.models.inputs import ImageLike, to_batch
from nrdseg.models.loss_terms import DecodeLoss, build_decode_loss
from nrdseg.models.shapes import LEVELS, NECK, ShapeSpec
from nrdseg.ops.batchnorm_checks import check_batch_statistics
from nrdseg.ops.cross_entropy import cross_entropy
from nrdseg.ops.labels import IGNORE_INDEX, check_ignore_index, label_classes
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD
from nrdseg.ops.resize import resize
from nrdseg.ops.upsample_argmax import upsample_argmax


def encoder_shapes(backbone: nn.Module, neck: nn.Module) -> dict[str, ShapeSpec]:
    """The backbone's level shapes and the neck's (its ``out_channels``, at the last
    level's stride): every map a head may read, see :mod:`nrdseg.models.shapes`."""
    shapes = dict(backbone.shapes)
    shapes[NECK] = ShapeSpec(neck.out_channels, shapes[LEVELS[-1]].stride)
    return shapes


def check_aux_weight(aux_weight: Any, *, aux: bool) -> None:
    """ValueError unless ``aux_weight`` is a finite number >= 0, and > 0 with an aux head
    (0 would train the head on nothing)."""
    number = isinstance(aux_weight, (int, float)) and not isinstance(aux_weight, bool)
    if not (number and 0 <= aux_weight < float("inf")):
        raise ValueError(f"aux_weight: expected a finite number >= 0, got {aux_weight!r}")
    if aux and aux_weight == 0:
        raise ValueError(
            "aux_weight: 0 trains the auxiliary head on nothing (its loss is multiplied by "
            "0); set aux: false to build the model without it"
        )


class Segmentor(nn.Module):
    """A semantic segmentation model.

    ``forward(images)`` takes normalized float images (B, 3, H, W) of any size and returns
    logits (B, C, H, W): inputs are padded to a multiple of ``size_divisor`` inside and the
    logits are cropped back. ``loss(images, labels)`` returns the training losses;
    ``predict(image)`` returns labels for tensors, PIL images or numpy arrays.

    ``avg_non_ignore`` (mmseg's name) sets the cross-entropy's denominator, for the main
    and the auxiliary loss: False (the default, the authors' code and mmseg 0.x) divides
    the summed loss by all pixels of the labels, ignored ones included; True by the
    labelled pixels only (PyTorch's mean). See :func:`nrdseg.ops.cross_entropy.cross_entropy`.
    The pixels the model pads to /32 inside never count.

    ``num_classes=1`` is a binary model (see :mod:`nrdseg.ops.labels`): one logit, labels
    0 (background) and 1, the binary form of every loss term, and predictions of 1 where
    ``sigmoid(logit) > 0.5``. :attr:`label_classes` is then 2, the classes its labels,
    predictions, metrics and ``meta`` (names, palette) hold. ``ignore_index`` must not be
    one of those class ids; nrdseg's datasets, transforms and metrics use 255.

    ValueError for settings that would train on nothing: an ``ignore_index`` inside the
    class ids, an ``aux_weight`` below 0, or 0 with an auxiliary head.

    Parts: ``backbone`` returns its four levels by name and gives their ``shapes``
    (:class:`~nrdseg.models.backbone.TimmBackbone`), ``neck`` turns the last level into
    the ``neck`` map, and ``decoder`` and ``aux_head`` are
    :class:`~nrdseg.models.heads.base.DecodeHead`s that get the maps they declare.
    """

    size_divisor = 32

    def __init__(
        self,
        *,
        backbone: nn.Module,
        neck: nn.Module,
        decoder: DecodeHead,
        num_classes: int,
        aux_head: DecodeHead | None = None,
        aux_weight: float = 0.4,
        ignore_index: int = IGNORE_INDEX,
        avg_non_ignore: bool = False,
        decode_loss: DecodeLoss | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        check_ignore_index(ignore_index, num_classes=num_classes)
        check_aux_weight(aux_weight, aux=aux_head is not None)
        if decode_loss is not None and decode_loss.binary != (num_classes == 1):
            raise ValueError(
                f"decode_loss was built for a {'binary' if decode_loss.binary else 'multi-class'}"
                f" model, this one has {num_classes} output channel(s); build it with "
                f"build_decode_loss(..., num_classes={num_classes})"
            )
        self.backbone = backbone
        self.neck = neck
        self.decoder = decoder
        self.aux_head = aux_head
        self.num_classes = num_classes
        self.aux_weight = aux_weight
        self.ignore_index = ignore_index
        self.avg_non_ignore = avg_non_ignore
        #: The decoder's loss terms (cross-entropy alone unless given); no parameters.
        if decode_loss is None:
            decode_loss = build_decode_loss(num_classes=num_classes, ignore_index=ignore_index)
        self.decode_loss = decode_loss
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        #: Keyword arguments that rebuild this model with ``nrdseg.create_model``.
        self.config: dict[str, Any] = {}
        #: Dataset metadata saved with the weights: ``classes`` (names), ``palette`` (RGB).
        self.meta: dict[str, Any] = {}

    @property
    def binary(self) -> bool:
        """True for a one-logit model: labels 0/1, class 1 where ``sigmoid(logit) > 0.5``."""
        return self.num_classes == 1

    @property
    def label_classes(self) -> int:
        """The class ids its labels and predictions hold: ``num_classes``, or 2 if binary."""
        return label_classes(self.num_classes)

    # -- shapes and checks -------------------------------------------------------------
    def _check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor):
            raise TypeError(
                f"images must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}; "
                "use model.predict() for PIL images or numpy arrays"
            )
        if images.ndim != 4:
            raise ValueError(
                f"images must be 4-D (B, 3, H, W), got shape {tuple(images.shape)}"
                + ("; add a batch dimension with images[None]" if images.ndim == 3 else "")
            )
        if images.shape[1] != 3:
            raise ValueError(
                f"images must have 3 (RGB) channels in dim 1, got {images.shape[1]} "
                f"(shape {tuple(images.shape)})"
            )
        if not images.is_floating_point():
            raise TypeError(
                f"images must be a normalized float tensor, got dtype {images.dtype}; "
                "use model.predict() for uint8 images"
            )

    def _pad(self, x: torch.Tensor, value: float) -> torch.Tensor:
        """Pad bottom/right to a multiple of 32, unconditionally so exported graphs stay dynamic."""
        h, w = x.shape[-2:]
        d = self.size_divisor
        # Round up with floor division, not ``(-h) % d``: torch.compile's aot_eager fails on
        # symbolic modulo once sizes turn dynamic.
        pad_h = (h + d - 1) // d * d - h
        pad_w = (w + d - 1) // d * d - w
        return F.pad(x, (0, pad_w, 0, pad_h), value=value)

    # -- forward paths -----------------------------------------------------------------
    @property
    def feature_shapes(self) -> dict[str, ShapeSpec]:
        """Channels and stride of every encoder map a head may read (:func:`encoder_shapes`)."""
        return encoder_shapes(self.backbone, self.neck)

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The backbone's four levels and the neck's output, by name (NCHW)."""
        maps = self.backbone(images)
        maps[NECK] = self.neck(maps[LEVELS[-1]])
        return maps

    def decode_padded(self, padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decoder logits at the decoder's own resolution (+ aux logits when training).

        Each head receives the encoder maps its ``in_features`` name, in that order.
        """
        maps = self.encode(padded)
        logits = self.decoder(*(maps[name] for name in self.decoder.in_features))
        aux = None
        if self.aux_head is not None and self.training:
            aux = self.aux_head(*(maps[name] for name in self.aux_head.in_features))
        return logits, aux

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self._check_images(images)
        height, width = images.shape[-2:]
        padded = self._pad(images, 0.0)
        logits, _ = self.decode_padded(padded)
        logits = resize(logits, padded.shape[-2:])
        # Crop by negative padding: a slice view makes torch.export guard on whether padding
        # happened, which pins exported programs to sizes that are (or are not) multiples of 32.
        return F.pad(logits, (0, width - logits.shape[-1], 0, height - logits.shape[-2]))

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The decode loss on logits upsampled to the label size, + aux_weight x auxiliary.

        Returns ``loss`` (the total), ``loss_main`` (the decode terms' weighted sum),
        ``loss_aux`` (cross-entropy of the auxiliary head, when it runs; binary for a
        binary model) and, when
        ``decode_loss`` has several terms, each by its ``loss_name``.
        """
        self._check_images(images)
        if labels.ndim != 3 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must be (B, H, W) with B = {images.shape[0]}, got {tuple(labels.shape)}"
            )
        if labels.is_floating_point():
            raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
        if labels.shape[-2:] != images.shape[-2:]:
            raise ValueError(
                f"labels {tuple(labels.shape[-2:])} and images {tuple(images.shape[-2:])} "
                "differ in size"
            )
        # Before the model runs: cross-entropy would fail only after the whole forward pass
        # (on CUDA as an unreadable device-side assert); the backbone first on small crops.
        classes = self.label_classes
        outside = (labels != self.ignore_index) & ((labels < 0) | (labels >= classes))
        if outside.any():
            values = labels[outside].unique()[:5].tolist()
            kind = "binary (one-logit)" if self.binary else f"{classes}-class"
            raise ValueError(
                f"labels hold {values}, not classes of this {kind} model; "
                f"expected 0..{classes - 1} or {self.ignore_index} (ignore)"
            )
        if self.training:
            check_batch_statistics(self, images.shape[0])
        padded = self._pad(images, 0.0)
        target = labels.long()
        logits, aux = self.decode_padded(padded)
        main = self._at_label_size(logits, target, padded.shape[-2:])
        terms = self.decode_loss(main, target, avg_non_ignore=self.avg_non_ignore)
        losses = {"loss_main": sum(terms.values())}
        if len(terms) > 1:
            losses.update(terms)
        total = losses["loss_main"]
        if aux is not None:
            losses["loss_aux"] = self._ce(aux, target, padded.shape[-2:])
            total = total + self.aux_weight * losses["loss_aux"]
        losses["loss"] = total
        return losses

    @staticmethod
    def _at_label_size(
        logits: torch.Tensor, target: torch.Tensor, padded: Sequence[int]
    ) -> torch.Tensor:
        """Upsample to the padded input's size and crop the padding off."""
        return resize(logits, padded)[..., : target.shape[-2], : target.shape[-1]]

    def _ce(
        self, logits: torch.Tensor, target: torch.Tensor, padded: Sequence[int]
    ) -> torch.Tensor:
        """Cross-entropy of the auxiliary head at the label size."""
        return cross_entropy(
            self._at_label_size(logits, target, padded),
            target,
            ignore_index=self.ignore_index,
            avg_non_ignore=self.avg_non_ignore,
        )

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.yaml`` + ``model.safetensors`` into ``directory`` atomically
        (:func:`nrdseg.checkpoint.format.save_pretrained`); ``nrdseg.load_model`` reads it."""
        return save_pretrained(self, directory)

    def push_to_hub(self, repo_id: str, **options: Any) -> Any:
        """Upload config, weights and a model card to the Hugging Face Hub (``nrdseg[hub]``).

        A facade for :func:`nrdseg.checkpoint.hub.push_to_hub` (``private``, ``token``,
        ``revision``, ``commit_message``); ``nrdseg.load_model("hf://" + repo_id)`` loads it.
        """
        return push_to_hub(self, repo_id, **options)

    @torch.no_grad()
    def predict_labels(self, images: torch.Tensor) -> torch.Tensor:
        """``self(images).argmax(1)`` without full-resolution float logits, in the current mode.

        The decoder's native-resolution logits are upsampled and reduced band by band
        (:func:`nrdseg.ops.upsample_argmax.upsample_argmax`); labels are uint8 for <= 255
        classes. A binary model gives 1 where ``sigmoid(logit) > 0.5`` (logit > 0), else 0.
        """
        self._check_images(images)
        height, width = images.shape[-2:]
        padded = self._pad(images, 0.0)
        logits, _ = self.decode_padded(padded)
        return upsample_argmax(logits, size=padded.shape[-2:], crop=(height, width))

    @torch.no_grad()
    def predict(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Labels at each image's own size: (H, W) for one image, (B, H, W) for a batch.

        Float tensors are taken as already normalized; uint8 tensors, numpy arrays and
        PIL images as raw RGB, normalized with the model's mean and std.
        """
        was_training = self.training
        self.eval()
        try:
            batch, single = to_batch(images, mean=self.mean, std=self.std)
            device = next(self.parameters()).device
            labels = self.predict_labels(batch.to(device)).long()
        finally:
            self.train(was_training)
        return labels[0] if single else labels
