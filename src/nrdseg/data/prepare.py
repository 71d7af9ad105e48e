"""One-off conversions of datasets as downloaded into the layout the loaders read."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from nrdseg.data.cityscapes import LABEL_ID_SUFFIX, LABEL_SUFFIX, id_to_train_id
from nrdseg.data.files import DataError, read_mask
from nrdseg.data.scan import LeftOut, match_files
from nrdseg.utils.atomic import atomic_write_bytes
from nrdseg.utils.progress import progress_bar


def prepare_cityscapes(root: str | Path, *, progress: bool = True) -> tuple[int, int]:
    """Write ``*_gtFine_labelTrainIds.png`` beside every ``*_gtFine_labelIds.png``.

    Uses the official id -> trainId table (ids outside the 19 classes -> 255). Each file is
    written to a temporary sibling and renamed, so an interrupted run leaves no half file
    and can simply be started again: existing outputs are skipped. Returns
    (converted, skipped).
    """
    gt = Path(root) / "gtFine"
    left_out = LeftOut()
    # Other gtFine files (colour, instance ids, polygons) are no inputs: not reported.
    sources = match_files(gt, f"*/*/*{LABEL_ID_SUFFIX}", left_out=left_out) if gt.is_dir() else []
    left_out.warn(gt)
    if not sources:
        raise DataError(
            f"no *{LABEL_ID_SUFFIX} files under {gt}; expected "
            f"ROOT/gtFine/{{split}}/{{city}}/{{name}}{LABEL_ID_SUFFIX} as downloaded"
        )
    table = id_to_train_id()
    converted = 0
    for source in progress_bar(
        sources, desc="labelIds -> labelTrainIds", unit="file", enabled=progress
    ):
        target = source.with_name(source.name[: -len(LABEL_ID_SUFFIX)] + LABEL_SUFFIX)
        if target.exists():
            continue
        buffer = io.BytesIO()
        Image.fromarray(table[read_mask(source)]).save(buffer, format="PNG")
        atomic_write_bytes(target, buffer.getvalue())
        converted += 1
    return converted, len(sources) - converted
