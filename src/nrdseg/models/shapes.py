"""What the encoder hands to a decoder: named feature maps and their shapes.

detectron2's ``ShapeSpec`` idea: a head never guesses its input widths, it declares which
encoder maps it reads and takes their channel counts from :class:`ShapeSpec`s when the
zoo builds it (:meth:`nrdseg.models.heads.base.DecodeHead.from_shapes`).

Map names: ``stride4`` .. ``stride32`` are the backbone's four levels, named by their
reduction in the non-dilated backbone (a dilated, output-stride-8 backbone keeps the
names, its ``stride16`` and ``stride32`` maps then sit at stride 8); ``neck`` is the ASPP
output, at the backbone's output stride.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The backbone levels, shallowest first, and the neck.
LEVELS = ("stride4", "stride8", "stride16", "stride32")
NECK = "neck"
FEATURE_NAMES = (*LEVELS, NECK)


@dataclass(frozen=True)
class ShapeSpec:
    """One encoder map: ``channels`` and its ``stride`` (input pixels per map pixel)."""

    channels: int
    stride: int
