"""Free-form config mappings checked against the signatures that receive them.

``model.options`` go to ``create_model`` (encoder, head, segmentor), each ``loss.decode``
term to its loss constructor, ``data.*.options`` to the dataset's constructor. The typed
schema cannot know what those accept, so their values are checked here, at config load
(before any work dir, label count or data), against the annotations of the receiving
parameters, with :func:`nrdseg.config.schema.convert`: numbers written as text
(``"1e-5"`` for a float) are converted, anything else that does not fit is refused
naming the key. The CLI's ``--set`` options of ``nrdseg data check`` and ``nrdseg
flops`` go through the same functions.

A null value drops the option, so that the receiver's default applies (unless the
parameter itself takes null): a child config or ``--set KEY=null`` removes an option it
inherited, e.g. one of another decoder.
"""

from __future__ import annotations

import inspect
import logging
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Union

from nrdseg.config.schema import ConfigError, convert
from nrdseg.data.registry import dataset_options
from nrdseg.models.loss_terms import (
    LOSS_TYPES,
    MEDIAN_FREQUENCY,
    build_loss_term,
    term_parameters,
)
from nrdseg.models.zoo import LOSS_OPTIONS, list_models, model_spec, option_parameters
from nrdseg.utils.names import did_you_mean

log = logging.getLogger("nrdseg.config")


def _takes_null(annotation: Any) -> bool:
    if annotation in (Any, inspect.Parameter.empty, type(None)):
        return True
    origin = typing.get_origin(annotation)
    return origin in (Union, types.UnionType) and type(None) in typing.get_args(annotation)


def check_options(
    options: Mapping[str, Any],
    parameters: Mapping[str, inspect.Parameter],
    *,
    prefix: str,
    receiver: str,
    hint: Callable[[str], str] = lambda name: "",
) -> dict[str, Any]:
    """``options`` with each value checked against its parameter's annotation.

    ``prefix`` starts every key named in an error or log (``"options."``, ``"--set "``);
    ``receiver`` names what takes the options (``"model dlv3p_r50"``). A null value is
    dropped unless its parameter takes null. An unknown name raises
    :class:`ConfigError` listing the valid ones, after ``hint(name)``.
    """
    checked, unknown = {}, []
    for name, value in options.items():
        key = f"{prefix}{name}"
        parameter = parameters.get(name)
        if value is None and (parameter is None or not _takes_null(parameter.annotation)):
            log.info("%s: null, so left out (%s's default applies)", key, receiver)
        elif parameter is None:
            unknown.append(name)
        else:
            checked[name] = convert(value, parameter.annotation, key)
    if unknown:  # every one at once: a switched model often leaves several behind
        valid = ", ".join(parameters) or "none"
        lines = [f"{prefix}{name}: unknown option for {receiver}{hint(name)}" for name in unknown]
        raise ConfigError("\n".join(lines) + f"; valid: {valid}")
    return checked


def check_model_options(
    name: str, options: Mapping[str, Any], *, prefix: str, exclude: Collection[str] = ()
) -> dict[str, Any]:
    """``create_model(name, **options)``'s options checked, but for the loss and
    ``exclude`` (set elsewhere); an option of another zoo model names the heads and
    models that take it and how to drop it. ValueError for an unknown model."""
    parameters = option_parameters(name)
    settable = {k: p for k, p in parameters.items() if k not in {*LOSS_OPTIONS, *exclude}}

    def elsewhere(option: str) -> str:
        owners = [m for m in list_models() if option in option_parameters(m)]
        if not owners:
            return did_you_mean(option, list(settable))
        heads = sorted({model_spec(m).head.__name__ for m in owners})
        shown = ", ".join(owners[:4]) + (", ..." if len(owners) > 4 else "")
        return (
            f"; it is an option of {', '.join(heads)} ({shown}), kept from another model's "
            f"config? Remove it, or drop it with null (--set model.options.{option}=null)"
        )

    head = model_spec(name).head.__name__
    return check_options(
        options, settable, prefix=prefix, receiver=f"model {name} ({head})", hint=elsewhere
    )


def check_dataset_options(
    name: str,
    options: Mapping[str, Any],
    *,
    prefix: str,
    given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``build_dataset(name, **given, **options)``'s options checked; ``given`` are the
    config's own ``root`` / ``split`` (non-null ones), checked as options too, and named
    as such when required. ValueError for an unknown dataset."""
    fields_prefix = "" if given is not None else prefix  # root / split: fields, or options
    given = given or {}
    parameters = {k: p for k, p in dataset_options(name).items() if k != "transforms"}
    if "transforms" in options:
        raise ConfigError(
            f"{prefix}transforms: a dataset's transforms is a Python callable; set "
            "augmentation in the config's data.transforms instead"
        )
    for field, value in given.items():
        if field in options:
            raise ConfigError(f"{prefix}{field}: set {field} itself, not as an option")
        if field not in parameters:
            raise ConfigError(f"{field}: dataset {name!r} takes no {field}; remove it")
        convert(value, parameters[field].annotation, field)
    checked = check_options(
        options,
        parameters,
        prefix=prefix,
        receiver=f"dataset {name!r}",
        hint=lambda option: did_you_mean(option, list(parameters)),
    )
    missing = [
        k
        for k, p in parameters.items()
        if p.default is inspect.Parameter.empty and k not in checked and k not in given
    ]
    if missing:
        raise ConfigError(f"{fields_prefix}{missing[0]}: required by dataset {name!r}")
    return checked


def check_loss_term(spec: Any, *, where: str) -> dict[str, Any]:
    """One ``loss.decode`` entry (``{type: dice, smooth: 1e-5, ...}``) checked against its
    loss's constructor; ``class_weight`` may also be ``median_frequency``."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in LOSS_TYPES:
        build_loss_term(spec, where=where)  # raises: no mapping, no type or an unknown one
    parameters = term_parameters(kind)
    if "class_weight" in parameters:
        weight = parameters["class_weight"]
        parameters["class_weight"] = weight.replace(
            annotation=weight.annotation | Literal[MEDIAN_FREQUENCY]
        )
    options = {k: v for k, v in spec.items() if k != "type"}
    checked = check_options(
        options,
        parameters,
        prefix=f"{where}.",
        receiver=f"loss {kind!r}",
        hint=lambda option: did_you_mean(option, list(parameters)),
    )
    return {"type": kind, **checked}
