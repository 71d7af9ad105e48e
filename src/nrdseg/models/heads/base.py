"""What every decoder declares: the encoder maps it reads, its width options, its init.

A head is a plain ``nn.Module`` whose constructor takes channel counts and options; it
never sees a config or the encoder. The class states which encoder maps feed which
constructor argument (``inputs``), and :meth:`DecodeHead.from_shapes` fills those
arguments from the encoder's :class:`~nrdseg.models.shapes.ShapeSpec`s (detectron2's
``from_config`` idea). ``forward`` receives the same maps, positionally, in the order of
:attr:`DecodeHead.in_features`. The zoo, the tests and the studies read the other
declarations instead of guessing from names.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

from torch import nn

from nrdseg.models.shapes import FEATURE_NAMES, NECK, ShapeSpec


class DecodeHead(nn.Module):
    """Base class of the decoders (and of the auxiliary head).

    Subclasses set, as class attributes:

    - ``inputs``: constructor argument -> encoder map name, or a tuple of names for an
      argument that takes one channel count per map (names: ``stride4``, ``stride8``,
      ``stride16``, ``stride32``, ``neck``; see :mod:`nrdseg.models.shapes`). ``forward``
      takes the maps in this order, a tuple's in its own order.
    - ``width_options``: constructor options that set the head's width; tests shrink them
      and studies scale them with the neck.
    - ``classifiers``: sub-modules initialised as mmseg's ``conv_seg`` (normal, std 0.01).
    - ``own_init``: sub-module name prefixes initialised otherwise than mmcv's
      ``ConvModule`` default (kaiming normal, fan_out), each with how and why; every other
      convolution of a head must be a ``ConvModule`` (``tests/models/test_init.py``).

    Raises ``TypeError`` when the class is defined with an ``inputs`` key or a width option
    that its constructor does not take, or an unknown map name.
    """

    inputs: ClassVar[Mapping[str, str | tuple[str, ...]]] = {"in_channels": NECK}
    width_options: ClassVar[tuple[str, ...]] = ()
    classifiers: ClassVar[tuple[str, ...]] = ("classifier",)
    own_init: ClassVar[Mapping[str, str]] = {}
    #: The encoder maps ``forward`` takes, in order (derived from ``inputs``).
    in_features: ClassVar[tuple[str, ...]] = (NECK,)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for value in cls.inputs.values():
            names.extend((value,) if isinstance(value, str) else value)
        unknown = sorted(set(names) - set(FEATURE_NAMES))
        if unknown:
            raise TypeError(
                f"{cls.__name__}.inputs names unknown maps {unknown}; valid: {FEATURE_NAMES}"
            )
        params = set(inspect.signature(cls.__init__).parameters)
        missing = sorted((set(cls.inputs) | set(cls.width_options) | {"num_classes"}) - params)
        if missing:
            raise TypeError(
                f"{cls.__name__}.__init__ does not take {missing}, which its inputs / "
                "width_options declare (every head also takes num_classes)"
            )
        cls.in_features = tuple(names)

    @classmethod
    def options(cls) -> dict[str, inspect.Parameter]:
        """The constructor's own options: every keyword except the wired ones."""
        wired = {"self", "num_classes", *cls.inputs}
        params = inspect.signature(cls.__init__, eval_str=True).parameters
        return {name: p for name, p in params.items() if name not in wired}

    @classmethod
    def check_option_values(cls, options: Mapping[str, Any]) -> None:
        """What :meth:`from_shapes` refuses before building: see there."""
        declared = cls.options()
        for name, value in options.items():
            if name in declared:
                _check_option(cls.__name__, name, value, declared[name].annotation)

    @classmethod
    def from_shapes(
        cls, shapes: Mapping[str, ShapeSpec], *, num_classes: int, **options: Any
    ) -> DecodeHead:
        """Build the head on an encoder with these map ``shapes``; ``options`` as ``__init__``.

        Every option annotated ``int`` is a size or a count (channels, kernel, factor,
        groups, stages), so a value below 1 is refused here, naming the option, before a
        layer of the wrong size is made; so is a value of another type than a plain
        ``int``, ``float``, ``bool`` or ``tuple[int, ...]`` annotation asks for. Raises
        ``ValueError`` for such a size or when the encoder lacks a map the head reads,
        ``TypeError`` for such a type.
        """
        cls.check_option_values(options)
        wired: dict[str, Any] = {}
        for argument, names in cls.inputs.items():
            group = (names,) if isinstance(names, str) else names
            absent = [name for name in group if name not in shapes]
            if absent:
                raise ValueError(
                    f"{cls.__name__} reads encoder maps {absent}, which this encoder does not "
                    f"give (it gives {sorted(shapes)})"
                )
            channels = tuple(shapes[name].channels for name in group)
            wired[argument] = channels[0] if isinstance(names, str) else channels
        return cls(**wired, num_classes=num_classes, **options)


def _check_option(head: str, name: str, value: Any, annotation: Any) -> None:
    """Refuse a value that does not fit a plain annotation (other annotations pass)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ints = isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )
    fits = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: number,
        bool: isinstance(value, bool),
        tuple[int, ...]: ints,
    }.get(annotation, True)
    if not fits:
        raise TypeError(
            f"{head} option {name} expects {getattr(annotation, '__name__', annotation)}, "
            f"got {value!r} ({type(value).__name__})"
        )
    if annotation is int and value < 1:
        raise ValueError(f"{head} option {name} is a size and must be >= 1, got {value}")
