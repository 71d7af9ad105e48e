"""Segment image files in batches and write palette label PNGs (and overlays)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from nrdseg.config.run import TTA_SCALES
from nrdseg.data.cityscapes import CITYSCAPES_CLASSES, train_id_to_id
from nrdseg.data.files import DataError, read_image, read_image_size
from nrdseg.data.scan import LeftOut
from nrdseg.deploy.colors import OVERLAY_ALPHA, gray_png, label_png, model_palette, overlay_png
from nrdseg.deploy.images import expand_inputs, output_names
from nrdseg.evaluation import runtime
from nrdseg.evaluation.evaluate import InferenceSpeed
from nrdseg.evaluation.inference import check_mode, infer_logits
from nrdseg.models.segmentor import Segmentor
from nrdseg.ops.labels import logits_to_labels
from nrdseg.ops.normalize import normalize
from nrdseg.utils.atomic import atomic_write_bytes
from nrdseg.utils.progress import progress_bar
from nrdseg.utils.wrappers import unwrap_model

LABELS_DIR = "labels"
OVERLAYS_DIR = "overlays"
#: Label PNG formats: class ids with the model's palette, or Cityscapes label ids.
FORMATS = ("palette", "cityscapes")


@dataclass
class PredictSummary:
    """What a run wrote, which inputs it skipped (unreadable) with the reason, and the
    files the input folders and patterns held that were no inputs (``left_out``)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    left_out: LeftOut = field(default_factory=LeftOut)


def _batches(
    files: Sequence[Path], sizes: dict[Path, tuple[int, int]], batch_size: int
) -> Iterator[list[Path]]:
    """Files grouped by image size, in chunks of at most ``batch_size``."""
    groups: dict[tuple[int, int], list[Path]] = {}
    for path in files:
        if path in sizes:
            groups.setdefault(sizes[path], []).append(path)
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


class _Chunks(torch.utils.data.Dataset):
    """Decoded chunks of files for DataLoader workers: ``(groups, errors)`` per chunk.

    ``groups`` holds ``(paths, uint8 (B, 3, H, W))`` per image size in the chunk (a probed
    size can differ from the decoded one for odd files); ``errors`` the unreadable files.
    """

    def __init__(self, chunks: list[list[Path]]) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> tuple[list, list[tuple[Path, DataError]]]:
        loaded: dict[tuple[int, ...], list[tuple[Path, torch.Tensor]]] = {}
        errors = []
        for path in self.chunks[index]:
            try:
                image = read_image(path)
            except DataError as err:
                errors.append((path, err))
                continue
            loaded.setdefault(tuple(image.shape), []).append((path, image))
        groups = [([p for p, _ in g], torch.stack([im for _, im in g])) for g in loaded.values()]
        return groups, errors


def _labels(
    model: Segmentor,
    run: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    tta: bool,
    window: dict,
) -> torch.Tensor:
    """(B, H, W) class ids (uint8 for <= 255 classes on the whole-image path) of a uint8
    (B, 3, H, W) batch on the model's device; ``run`` is the (compiled)
    ``model.predict_labels``; ``window`` the slide ``mode``, ``crop_size`` and ``stride``
    (empty: the whole image). A binary model gives 0/1: 1 where the (TTA-averaged)
    sigmoid exceeds 0.5."""
    normalized = normalize(images, mean=model.mean, std=model.std)
    if tta or window:
        views = {"scales": TTA_SCALES, "flip": True} if tta else {}
        return logits_to_labels(infer_logits(model, normalized, **window, **views))
    return run(normalized)


def _label_writer(
    model: Segmentor, format: str, palette: list[list[int]]
) -> Callable[[np.ndarray], bytes]:
    """Label map -> PNG bytes in ``format`` (see :func:`predict_files`)."""
    if format == "palette":
        return lambda labels: label_png(labels, palette)
    if format != "cityscapes":
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if model.num_classes != len(CITYSCAPES_CLASSES):
        raise ValueError(
            f"format 'cityscapes' maps the 19 Cityscapes training ids to label ids; this "
            f"model predicts {model.num_classes} classes"
        )
    table = train_id_to_id()
    return lambda labels: gray_png(table[labels])


@dataclass(frozen=True)
class _Outputs:
    """Where each input's label PNG (and overlay) goes, and how they are encoded.

    ``encode``: label map -> PNG bytes; ``blend``: (uint8 (H, W, 3) image, label map) ->
    overlay PNG bytes, None without overlays.
    """

    out_dir: Path
    names: dict[Path, Path]
    encode: Callable[[np.ndarray], bytes]
    blend: Callable[[np.ndarray, np.ndarray], bytes] | None

    def labels_path(self, path: Path) -> Path:
        return self.out_dir / LABELS_DIR / self.names[path]

    def write(self, path: Path, image: torch.Tensor, label: np.ndarray) -> None:
        """Write the PNGs of input ``path``: ``image`` uint8 (3, H, W), ``label`` (H, W)."""
        atomic_write_bytes(self.labels_path(path), self.encode(label))
        if self.blend is not None:
            blend = self.blend(image.permute(1, 2, 0).numpy(), label)
            atomic_write_bytes(self.out_dir / OVERLAYS_DIR / self.names[path], blend)


def _outputs(
    model: Segmentor, files: list[Path], *, out_dir: Path, format: str, overlay: bool, alpha: float
) -> _Outputs:
    """The outputs of ``files`` under ``out_dir``; ValueError for a ``format`` the model
    cannot be written in."""
    palette = model_palette(model.meta, model.label_classes)
    classes = model.meta.get("classes")
    return _Outputs(
        out_dir=out_dir,
        names=dict(zip(files, output_names(files), strict=True)),
        encode=_label_writer(model, format, palette),
        blend=(
            (lambda image, label: overlay_png(image, label, palette, alpha=alpha, classes=classes))
            if overlay
            else None
        ),
    )


def _skipper(summary: PredictSummary, on_error: str) -> Callable[[Path, DataError], None]:
    """What an unreadable input does: listed in ``summary.skipped``, or raised with
    ``on_error="fail"``."""

    def skip(path: Path, err: DataError) -> None:
        if on_error == "fail":
            raise err
        summary.skipped.append((path, str(err)))

    return skip


def _image_sizes(
    files: Sequence[Path], skip: Callable[[Path, DataError], None]
) -> dict[Path, tuple[int, int]]:
    """The (H, W) of each readable file, from its header; the others go to ``skip``."""
    sizes: dict[Path, tuple[int, int]] = {}
    for path in files:
        try:
            sizes[path] = read_image_size(path)
        except DataError as err:
            skip(path, err)
    return sizes


def predict_files(
    model: Segmentor,
    inputs: Sequence[str | Path],
    *,
    out_dir: str | Path,
    overlay: bool = False,
    alpha: float = OVERLAY_ALPHA,
    tta: bool = False,
    mode: Literal["whole", "slide"] = "whole",
    crop_size: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    batch_size: int = 1,
    on_error: Literal["skip", "fail"] = "skip",
    progress: bool = True,
    format: Literal["palette", "cityscapes"] = "palette",
    writers: int = 4,
    speed: InferenceSpeed | None = None,
) -> PredictSummary:
    """Write ``out_dir/labels/<name>.png`` (and ``overlays/<name>.png``) for every input.

    Names mirror the inputs' folders below their common root. Images of one size share a
    batch. An unreadable file is skipped and reported, or raises with ``on_error="fail"``.
    Overlays blend the colours with weight ``alpha`` and add a legend strip of the classes
    present (:func:`nrdseg.deploy.colors.overlay_png`). ``mode="slide"`` runs the model on
    ``crop_size`` windows every ``stride`` pixels (H, W) and averages their logits, as
    ``nrdseg eval`` does (:func:`nrdseg.evaluation.inference.slide_logits`): for images
    too large for one forward pass. Files the folders and patterns hold that are no
    images, and outputs of an earlier run, are counted in ``summary.left_out``.
    ``format="palette"`` stores class ids in a palette PNG; ``"cityscapes"`` (19-class
    Cityscapes models only) stores the official label ids (``labelIds``, e.g. road = 7)
    in 8-bit grayscale PNGs, what the Cityscapes test server and ``cityscapesscripts``
    read; the names keep the image's ``city_seq_frame`` id.

    The device stays busy: ``speed.workers`` DataLoader processes decode the next batches
    (0: in this process), batches travel as uint8 in pinned memory on CUDA, and
    ``writers`` threads encode and write the PNGs. The labels do not depend on
    ``speed.workers`` or ``writers``. ``speed`` (default ``InferenceSpeed()``:
    channels-last on CUDA) also sets autocast, the memory format and torch.compile
    (:class:`nrdseg.evaluation.evaluate.InferenceSpeed`).
    """
    speed = InferenceSpeed() if speed is None else speed
    _check_options(batch_size=batch_size, writers=writers, on_error=on_error, alpha=alpha)
    model = unwrap_model(model)  # its predict, meta and num_classes, also under DDP
    crop_size, stride = check_mode(mode, crop_size, stride)
    window = {"mode": mode, "crop_size": crop_size, "stride": stride} if mode == "slide" else {}
    out_dir = Path(out_dir)
    summary = PredictSummary()
    files = expand_inputs(inputs, exclude=out_dir, left_out=summary.left_out)
    outputs = _outputs(model, files, out_dir=out_dir, format=format, overlay=overlay, alpha=alpha)
    skip = _skipper(summary, on_error)
    chunks = _Chunks(list(_batches(files, _image_sizes(files, skip), batch_size)))
    device = next(model.parameters()).device
    predict = _predictor(model, device, speed=speed, tta=tta, window=window)
    loader = torch.utils.data.DataLoader(
        chunks,
        batch_size=None,  # a chunk is a batch already
        num_workers=speed.workers,
        pin_memory=runtime.pin_memory(device),
    )
    _write_all(
        loader,
        predict,
        outputs,
        summary=summary,
        skip=skip,
        writers=writers,
        batch_size=batch_size,
        progress=progress,
    )
    return summary


def _check_options(*, batch_size: int, writers: int, on_error: str, alpha: float) -> None:
    """ValueError naming the first of :func:`predict_files`'s options out of range."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if writers < 1:
        raise ValueError(f"need writers >= 1 (threads writing the PNGs), got {writers}")
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def _predictor(
    model: Segmentor,
    device: torch.device,
    *,
    speed: InferenceSpeed,
    tta: bool,
    window: dict,
) -> Callable[[torch.Tensor], np.ndarray]:
    """``model`` prepared as ``speed`` asks (memory format, torch.compile), as a function
    from a uint8 (B, 3, H, W) host batch to its (B, H, W) labels (see :func:`_labels`)."""
    model = runtime.prepare_model(model, device, channels_last=speed.channels_last)
    run = runtime.CompiledOrEager(model.predict_labels) if speed.compile else model.predict_labels

    def predict(images: torch.Tensor) -> np.ndarray:
        batch = runtime.to_device(images, device, channels_last=speed.channels_last)
        with torch.no_grad(), runtime.autocast(device, speed.amp):
            return _labels(model, run, batch, tta=tta, window=window).cpu().numpy()

    return predict


def _write_all(
    chunks: Iterable[tuple[list, list[tuple[Path, DataError]]]],
    predict: Callable[[torch.Tensor], np.ndarray],
    outputs: _Outputs,
    *,
    summary: PredictSummary,
    skip: Callable[[Path, DataError], None],
    writers: int,
    batch_size: int,
    progress: bool,
) -> None:
    """Label the chunks of :class:`_Chunks` with ``predict`` while ``writers`` threads
    write the PNGs of those before; ``summary.written`` lists each label PNG."""
    pending: deque[Future] = deque()
    total = len(outputs.names)
    with (
        ThreadPoolExecutor(max_workers=writers, thread_name_prefix="nrdseg-png") as pool,
        progress_bar(total=total, desc="predict", unit="img", enabled=progress) as bar,
    ):
        bar.update(len(summary.skipped))
        for groups, errors in chunks:
            for path, err in errors:
                skip(path, err)
            for paths, images in groups:
                labels = predict(images)
                for path, image, label in zip(paths, images, labels, strict=True):
                    pending.append(pool.submit(outputs.write, path, image, label))
                    summary.written.append(outputs.labels_path(path))
            while len(pending) > 2 * writers + batch_size:  # bounds the labels held in memory
                pending.popleft().result()
            bar.update(sum(len(paths) for paths, _ in groups) + len(errors))
        for future in pending:
            future.result()
