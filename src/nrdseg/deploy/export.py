"""Export a model to ONNX, TorchScript or a torch.export program, dynamic in batch and size.

Every format takes normalized float images (B, 3, H, W) of any size and returns logits
(B, classes, H, W): the pad-to-32 and crop of ``Segmentor.forward`` are part of the graph.
The metadata (classes, palette, mean, std) travels inside the file so that a user of the
exported model can normalize inputs and colour outputs without nrdseg.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.export import Dim

from nrdseg.deploy.colors import model_palette
from nrdseg.models.segmentor import Segmentor
from nrdseg.utils.atomic import atomic_write_bytes
from nrdseg.utils.names import did_you_mean
from nrdseg.utils.optional import optional_import
from nrdseg.utils.version import __version__
from nrdseg.utils.wrappers import unwrap_model

log = logging.getLogger(__name__)

Format = Literal["onnx", "torchscript", "exported"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript", "exported")
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
#: Name of the JSON metadata inside TorchScript and .pt2 archives.
META_FILE = "nrdseg.json"
#: torch.export specializes feature maps of size 1, so .pt2 programs need H, W > 32.
EXPORTED_MIN_SIZE = 33
#: torch's ONNX exporter implements opset 18 and newer; older ones go through onnx's
#: version converter, which fails on this model's Resize and Pad (the file stays at 18).
ONNX_NATIVE_OPSET = 18
#: The (H, W) an exported TorchScript trace is run at, to show it is not pinned to one size.
PROBE_SIZE = (33, 47)


def export_metadata(model: Segmentor) -> dict[str, str]:
    """String key/values an exported model carries: how to feed it and read its output.

    ``num_classes`` is the logit channels; ``classes`` and ``palette`` list the class ids
    its labels hold: for a binary model (one logit) two, background and class 1.
    """
    classes = model.label_classes
    if model.binary:
        output = (
            f"{OUTPUT_NAME}: float32 (B, 1, H, W), one binary logit; class 1 where logit > 0 "
            "(sigmoid > 0.5), else class 0"
        )
    else:
        output = f"{OUTPUT_NAME}: float32 (B, num_classes, H, W); argmax over dim 1 = class id"
    values = {
        "model": model.config.get("name", type(model).__name__),
        "num_classes": model.num_classes,
        "classes": model.meta.get("classes") or [str(i) for i in range(classes)],
        "palette": model_palette(model.meta, classes),
        "mean": list(model.mean),
        "std": list(model.std),
        "input": f"{INPUT_NAME}: float32 (B, 3, H, W), RGB / 255, minus mean, divided by std",
        "output": output,
        "nrdseg_version": __version__,
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _onnx_bytes(model: Segmentor, example: torch.Tensor, opset: int | None) -> bytes:
    optional_import("onnxscript", extra="onnx")  # torch's exporter is built on it
    dims = {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        dynamic_shapes={INPUT_NAME: dims},
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        verbose=False,
    )
    program.model.metadata_props.update(export_metadata(model))
    return program.model_proto.SerializeToString()


def _torchscript_bytes(model: Segmentor, example: torch.Tensor) -> bytes:
    """``torch.jit.trace``: ``torch.jit.script`` rejects the ASPP's SyncBatchNorm check.

    The trace stays size-generic: the pad amounts are traced as arithmetic on the input
    size, and the only Python branch it freezes (resize's "already this size?") has the
    same answer at every size once the input is padded to a multiple of 32.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        traced = torch.jit.trace(model, example, check_trace=False)
        buffer = io.BytesIO()
        meta = json.dumps(export_metadata(model))
        torch.jit.save(traced, buffer, _extra_files={META_FILE: meta})
    return buffer.getvalue()


def _exported_bytes(model: Segmentor, example: torch.Tensor) -> bytes:
    dims = {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}
    program = torch.export.export(model, (example,), dynamic_shapes={INPUT_NAME: dims})
    buffer = io.BytesIO()
    extra = {META_FILE: json.dumps(export_metadata(model))}
    torch.export.save(program, buffer, extra_files=extra)
    return buffer.getvalue()


def _metadata_problems(stored: dict[str, str], expected: dict[str, str]) -> list[str]:
    wrong = sorted(k for k in expected if stored.get(k) != expected[k])
    return [f"metadata {', '.join(wrong)} missing or different"] if wrong else []


def _shape_problem(name: str, shape: list, channels: int) -> list[str]:
    """``shape`` as written: ints for fixed axes, anything else (names, symbols) dynamic."""
    fixed = [axis for axis in (0, 2, 3) if len(shape) == 4 and isinstance(shape[axis], int)]
    if len(shape) == 4 and not fixed and shape[1] == channels:
        return []
    return [
        f"{name} has shape {shape}; expected (batch, {channels}, height, width), dynamic in all but dim 1"
    ]


def _onnx_problems(data: bytes, expected: dict[str, str], channels: int, opset: int | None):
    onnx = optional_import("onnx", extra="onnx")
    proto = onnx.load_from_string(data)
    problems = []
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        problems.append(
            f"opset {written} instead of --opset {opset} (torch's exporter writes opsets "
            f"{ONNX_NATIVE_OPSET} to {onnx.defs.onnx_opset_version()}; converting this model "
            f"to an older one failed): use --opset {ONNX_NATIVE_OPSET} or newer, or leave it out"
        )
    graph = proto.graph
    for values, name, width in (
        (graph.input, INPUT_NAME, 3),
        (graph.output, OUTPUT_NAME, channels),
    ):
        found = [v for v in values if v.name == name]
        dims = found[0].type.tensor_type.shape.dim if found else []
        shape = [d.dim_param or d.dim_value for d in dims]
        problems += _shape_problem(name, shape, width) if found else [f"no {name} tensor"]
    stored = {p.key: p.value for p in proto.metadata_props}
    return problems + _metadata_problems(stored, expected)


def _torchscript_problems(data: bytes, expected: dict[str, str], channels: int, opset):
    files = {META_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=files)
    with torch.no_grad():
        out = module(torch.zeros(1, 3, *PROBE_SIZE))
    problems = (
        []
        if tuple(out.shape) == (1, channels, *PROBE_SIZE)
        else [
            f"{OUTPUT_NAME} of a 1 x 3 x {PROBE_SIZE[0]} x {PROBE_SIZE[1]} input has shape "
            f"{list(out.shape)}: the trace is pinned to the example size"
        ]
    )
    return problems + _metadata_problems(json.loads(files[META_FILE] or "{}"), expected)


def _exported_problems(data: bytes, expected: dict[str, str], channels: int, opset):
    files = {META_FILE: ""}
    program = torch.export.load(io.BytesIO(data), extra_files=files)
    inputs = program.graph_signature.user_inputs
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name in inputs)
    shape = [d if isinstance(d, int) else str(d) for d in node.meta["val"].shape]
    problems = _shape_problem(INPUT_NAME, shape, 3)
    return problems + _metadata_problems(json.loads(files[META_FILE] or "{}"), expected)


_PROBLEMS = {
    "onnx": _onnx_problems,
    "torchscript": _torchscript_problems,
    "exported": _exported_problems,
}


def _check_format(format: str) -> None:
    if format not in FORMATS:
        hint = did_you_mean(format, FORMATS)
        raise ValueError(f"unknown export format {format!r}{hint}; valid: {', '.join(FORMATS)}")


def check_export(
    data: bytes, *, format: Format, metadata: dict[str, str], num_classes: int, opset: int | None
) -> None:
    """Read an export back and check what was asked of it: the opset (ONNX), an input
    (and for ONNX, output) dynamic in batch, height and width, and every metadata value.

    Raises ValueError naming each property that does not hold, and what is possible.
    """
    problems = _PROBLEMS[format](data, metadata, num_classes, opset)
    if problems:
        raise ValueError(f"the {format} export is not what was asked: " + "; ".join(problems))


def export_model(
    model: Segmentor,
    path: str | Path,
    *,
    format: Format,
    example_size: tuple[int, int] = (512, 512),
    opset: int | None = None,
) -> Path:
    """Write ``model`` (switched to eval mode) to ``path`` atomically.

    ``example_size`` is the (H, W) traced through; other sizes work too (see module doc).
    The file is read back first (:func:`check_export`): an option the exporter did not
    honour raises ValueError and nothing is written.
    """
    _check_format(format)
    model = unwrap_model(model)  # exporters trace the model, not a DDP / compile wrapper
    if opset is not None and format != "onnx":
        raise ValueError(f"--opset applies to onnx only, not {format}")
    if opset is not None:
        newest = optional_import("onnx", extra="onnx").defs.onnx_opset_version()
        if not 1 <= opset <= newest:
            raise ValueError(
                f"--opset {opset} does not exist: torch's exporter writes opsets "
                f"{ONNX_NATIVE_OPSET} to {newest}"
            )
    if format == "exported" and Path(path).suffix != ".pt2":
        raise ValueError(f"{path}: torch.export programs must be saved as .pt2 files")
    if format == "exported" and min(example_size) < EXPORTED_MIN_SIZE:
        raise ValueError(f"exported programs need an example size >= {EXPORTED_MIN_SIZE}")
    model.eval()
    # Batch 2: with a batch of 1 the exporters would specialize the batch dimension.
    example = torch.randn(2, 3, *example_size, device=next(model.parameters()).device)
    log.info("exporting %s to %s at example size %s", format, path, example_size)
    if format == "onnx":
        data = _onnx_bytes(model, example, opset)
    elif format == "torchscript":
        data = _torchscript_bytes(model, example)
    else:
        data = _exported_bytes(model, example)
    check_export(
        data,
        format=format,
        metadata=export_metadata(model),
        num_classes=model.num_classes,
        opset=opset,
    )
    atomic_write_bytes(path, data)
    return Path(path)


def load_exported(path: str | Path, *, format: Format) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the exported file: float32 (B, 3, H, W) -> logits, both numpy."""
    _check_format(format)
    path = str(path)
    if format == "onnx":
        onnxruntime = optional_import("onnxruntime", extra="onnx")
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    if format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            module = torch.jit.load(path, map_location="cpu")
    else:
        module = torch.export.load(path).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run
