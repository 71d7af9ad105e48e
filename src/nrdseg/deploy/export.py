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

import nrdseg
from nrdseg.checkpoint import atomic_write_bytes
from nrdseg.deploy.colors import model_palette
from nrdseg.deploy.optional import optional_import
from nrdseg.models.segmentor import Segmentor

log = logging.getLogger(__name__)

Format = Literal["onnx", "torchscript", "exported"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript", "exported")
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
#: Name of the JSON metadata inside TorchScript and .pt2 archives.
META_FILE = "nrdseg.json"
#: torch.export specializes feature maps of size 1, so .pt2 programs need H, W > 32.
EXPORTED_MIN_SIZE = 33


def export_metadata(model: Segmentor) -> dict[str, str]:
    """String key/values an exported model carries: how to feed it and read its output."""
    values = {
        "model": model.config.get("name", type(model).__name__),
        "num_classes": model.num_classes,
        "classes": model.meta.get("classes") or [str(i) for i in range(model.num_classes)],
        "palette": model_palette(model.meta, model.num_classes),
        "mean": list(model.mean),
        "std": list(model.std),
        "input": f"{INPUT_NAME}: float32 (B, 3, H, W), RGB / 255, minus mean, divided by std",
        "output": f"{OUTPUT_NAME}: float32 (B, num_classes, H, W); argmax over dim 1 = class id",
        "nrdseg_version": nrdseg.__version__,
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
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")
    if opset is not None and format != "onnx":
        raise ValueError(f"--opset applies to onnx only, not {format}")
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
    atomic_write_bytes(path, data)
    return Path(path)


def load_exported(path: str | Path, *, format: Format) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the exported file: float32 (B, 3, H, W) -> logits, both numpy."""
    path = str(path)
    if format == "onnx":
        onnxruntime = optional_import("onnxruntime", extra="onnx")
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    if format == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            module = torch.jit.load(path, map_location="cpu")
    elif format == "exported":
        module = torch.export.load(path).module()
    else:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run
