"""Segment image files in batches and write palette label PNGs (and overlays)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
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
from nrdseg.evaluation.inference import check_mode, infer_logits
from nrdseg.models.segmentor import Segmentor
from nrdseg.ops.labels import logits_to_labels
from nrdseg.ops.normalize import normalize
from nrdseg.utils.atomic import atomic_write_bytes
from nrdseg.utils.progress import progress_bar
from nrdseg.utils.wrappers import unwrap_model

#: Test-time augmentation of the paper's evaluation: these scales, each also mirrored.
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
    workers: int = 0,
    writers: int = 4,
    amp: str = "none",
    channels_last: bool | None = None,
    compile: bool = False,
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

    The device stays busy: ``workers`` DataLoader processes decode the next batches (0:
    in this process), batches travel as uint8 in pinned memory on CUDA, and ``writers``
    threads encode and write the PNGs. The labels do not depend on ``workers`` or
    ``writers``. ``amp="bf16"`` runs the model under bfloat16 autocast; ``channels_last``
    (default: on CUDA) sets the memory format; ``compile`` uses torch.compile, falling
    back to eager with a warning where it cannot (see
    :class:`nrdseg.evaluation.runtime.CompiledOrEager`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 0 or writers < 1:
        raise ValueError(f"workers must be >= 0 and writers >= 1, got {workers} and {writers}")
    model = unwrap_model(model)  # its predict, meta and num_classes, also under DDP
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    crop_size, stride = check_mode(mode, crop_size, stride)
    window = {"mode": mode, "crop_size": crop_size, "stride": stride} if mode == "slide" else {}
    out_dir = Path(out_dir)
    summary = PredictSummary()
    files = expand_inputs(inputs, exclude=out_dir, left_out=summary.left_out)
    names = dict(zip(files, output_names(files), strict=True))
    palette = model_palette(model.meta, model.label_classes)
    write_labels = _label_writer(model, format, palette)

    def skip(path: Path, err: DataError) -> None:
        if on_error == "fail":
            raise err
        summary.skipped.append((path, str(err)))

    sizes: dict[Path, tuple[int, int]] = {}
    for path in files:
        try:
            sizes[path] = read_image_size(path)
        except DataError as err:
            skip(path, err)
    device = next(model.parameters()).device
    model = runtime.prepare_model(model, device, channels_last=channels_last)
    run = runtime.CompiledOrEager(model.predict_labels) if compile else model.predict_labels
    loader = torch.utils.data.DataLoader(
        _Chunks(list(_batches(files, sizes, batch_size))),
        batch_size=None,  # a chunk is a batch already
        num_workers=workers,
        pin_memory=runtime.pin_memory(device),
    )

    def write(name: Path, image: torch.Tensor, label: np.ndarray) -> None:
        atomic_write_bytes(out_dir / LABELS_DIR / name, write_labels(label))
        if overlay:
            blend = overlay_png(
                image.permute(1, 2, 0).numpy(),
                label,
                palette,
                alpha=alpha,
                classes=model.meta.get("classes"),
            )
            atomic_write_bytes(out_dir / OVERLAYS_DIR / name, blend)

    pending: deque[Future] = deque()
    with (
        ThreadPoolExecutor(max_workers=writers, thread_name_prefix="nrdseg-png") as pool,
        progress_bar(total=len(files), desc="predict", unit="img", enabled=progress) as bar,
    ):
        bar.update(len(summary.skipped))
        for groups, errors in loader:
            for path, err in errors:
                skip(path, err)
            for paths, images in groups:
                batch = runtime.to_device(images, device, channels_last=channels_last)
                with torch.no_grad(), runtime.autocast(device, amp):
                    labels = _labels(model, run, batch, tta=tta, window=window).cpu().numpy()
                for path, image, label in zip(paths, images, labels, strict=True):
                    pending.append(pool.submit(write, names[path], image, label))
                    summary.written.append(out_dir / LABELS_DIR / names[path])
            while len(pending) > 2 * writers + batch_size:  # bounds the labels held in memory
                pending.popleft().result()
            bar.update(sum(len(paths) for paths, _ in groups) + len(errors))
        for future in pending:
            future.result()
    return summary
