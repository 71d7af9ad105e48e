"""The dataset base classes: the sample contract, bad-sample policy, and image/mask pairs."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from nrdseg.data.files import DataError, read_image, read_mask
from nrdseg.data.labels import IGNORE_INDEX, apply_label_map, check_metadata
from nrdseg.data.scan import LeftOut, match_files
from nrdseg.ops.normalize import IMAGENET_MEAN, IMAGENET_STD, normalize
from nrdseg.utils.paths import relative_note

log = logging.getLogger(__name__)

#: ``(image uint8 (3, H, W), label uint8 (H, W)) -> (image float, label int64)``.
Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

ON_ERROR = ("raise", "skip")


class SegDataset(Dataset, abc.ABC):
    """A segmentation dataset: ``dataset[i]`` -> ``{"image", "label", "path"}``.

    ``image`` is float32 (3, H, W) normalized, ``label`` int64 (H, W) with values in
    ``[0, num_classes)`` or 255. Without ``transforms`` the sample is the whole image,
    normalized with ImageNet mean/std. With ``on_error="skip"`` a bad sample is logged,
    counted in ``skipped`` and replaced by the next good one, so one broken file does not
    stop a long training run; evaluation uses :meth:`sample`, which never replaces. Each copy of a dataset counts for itself (DataLoader workers
    hold copies): ``replaced``, the requests answered with another sample, does not depend
    on which copy served which request, so per-request differences add up exactly.
    """

    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        *,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        transforms: Transform | None = None,
        on_error: str = "raise",
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.classes, self.palette = check_metadata(classes, palette, source=type(self).__name__)
        self.transforms = transforms
        self.on_error = on_error
        #: Number of bad samples met so far (construction and loading) with on_error="skip".
        self.skipped = 0
        #: Requests for a bad sample answered with the next good one, with on_error="skip".
        self.replaced = 0
        #: Errors (naming the file) of the samples left out when the dataset was built.
        self.dropped: list[str] = []
        self._bad: set[int] = set()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(mean, std) the images are normalized with: ImageNet's without ``transforms``,
        the transforms' own when they tell (``build_transforms``), else None (unknown)."""
        if self.transforms is None:
            return IMAGENET_MEAN, IMAGENET_STD
        return getattr(self.transforms, "normalization", None)

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Raw sample ``index``: RGB uint8 (3, H, W), training-id uint8 (H, W), path."""

    def load_label(self, index: int) -> torch.Tensor | np.ndarray:
        """Training ids (H, W) of sample ``index`` alone, for label statistics."""
        return self.load(index)[1]

    def _skip(self, what: str, err: Exception) -> None:
        """Record one bad sample under on_error="skip" (the caller re-raises otherwise)."""
        self.skipped += 1
        log.warning("skipping %s: %s", what, err)

    def _check_index(self, index: int) -> int:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for {size} samples")
        return size

    def sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` itself, never a replacement: a bad one raises ``DataError``
        whatever ``on_error`` says, so that evaluation counts each sample once."""
        self._check_index(index)
        return self._finish(*self.load(index % len(self)))

    def __getitem__(self, index: int) -> dict[str, Any]:
        size = self._check_index(index)
        for offset in range(size):
            current = (index + offset) % size
            if current in self._bad:
                continue
            try:
                image, label, path = self.load(current)
            except DataError as err:
                if self.on_error == "raise":
                    raise
                self._bad.add(current)
                self._skip(f"sample {current}", err)
                continue
            if offset:
                self.replaced += 1
            return self._finish(image, label, path)
        raise DataError(f"all {size} samples of this {type(self).__name__} are bad")

    def _finish(self, image: torch.Tensor, label: torch.Tensor, path: str) -> dict[str, Any]:
        if self.transforms is None:
            image = normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        else:
            image, label = self.transforms(image, label)
        return {"image": image, "label": label.long(), "path": path}


class PairedFileDataset(SegDataset):
    """Images and masks on disk, paired by a layout subclass.

    Raw mask values go through ``label_map`` (256 entries, raw value -> training id). Pairs
    whose image or mask file is missing are an error, or skipped with on_error="skip".
    """

    def __init__(
        self,
        *,
        pairs: Sequence[tuple[Path, Path]],
        label_map: np.ndarray,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        transforms: Transform | None = None,
        on_error: str = "raise",
    ) -> None:
        super().__init__(classes=classes, palette=palette, transforms=transforms, on_error=on_error)
        self.label_map = label_map
        self.pairs = [pair for pair in pairs if self._exists(*pair)]

    def _exists(self, image: Path, mask: Path) -> bool:
        if image.is_file() and mask.is_file():
            return True
        if not image.is_file():
            err = DataError(f"image not found: {image}")
        elif mask.exists():
            err = DataError(f"mask {mask} of image {image} is not a file")
        else:
            err = DataError(f"image {image} has no mask: expected {mask}")
        if self.on_error == "raise":
            raise err
        self._skip(str(image), err)
        self.dropped.append(str(err))
        return False

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path)
        raw = read_mask(mask_path)
        if tuple(raw.shape) != tuple(image.shape[1:]):
            raise DataError(
                f"mask {mask_path} is {raw.shape[0]}x{raw.shape[1]} (HxW) but image "
                f"{image_path} is {image.shape[1]}x{image.shape[2]}"
            )
        return image, torch.from_numpy(self._training_ids(raw, mask_path)), str(image_path)

    def load_label(self, index: int) -> np.ndarray:
        """The mask's training ids without decoding the image (uint8 (H, W))."""
        mask_path = self.pairs[index][1]
        return self._training_ids(read_mask(mask_path), mask_path)

    def _training_ids(self, raw: np.ndarray, mask_path: Path) -> np.ndarray:
        return apply_label_map(raw, self.label_map, num_classes=self.num_classes, path=mask_path)


class BenchmarkDataset(PairedFileDataset):
    """A public benchmark: fixed ``CLASSES``, ``PALETTE`` and id table; subclasses only
    say where the (image, mask) pairs of a split live."""

    CLASSES: ClassVar[list[str]]
    PALETTE: ClassVar[list[list[int]]]
    #: Returns the 256-entry raw mask value -> training id table.
    label_table: ClassVar[Callable[[], np.ndarray]]

    def __init__(
        self,
        *,
        root: str | Path,
        split: str = "train",
        transforms: Transform | None = None,
        on_error: str = "raise",
    ) -> None:
        super().__init__(
            pairs=self.find_pairs(Path(root), split),
            label_map=self.label_table(),
            classes=self.CLASSES,
            palette=self.PALETTE,
            transforms=transforms,
            on_error=on_error,
        )

    @classmethod
    @abc.abstractmethod
    def find_pairs(cls, root: Path, split: str) -> list[tuple[Path, Path]]:
        """(image, mask) paths of ``split`` under ``root``; errors show the expected layout."""


def list_files(folder: Path, pattern: str, *, layout: str) -> list[Path]:
    """Sorted files matching ``pattern`` under ``folder``, or an error showing ``layout``.

    Linked folders are followed; the files left out (not matching, hidden, broken links,
    link loops) are counted in one warning that names them.
    """
    if not folder.is_dir():
        raise FileNotFoundError(
            f"folder not found: {folder}{relative_note(folder)}\nexpected layout:\n{layout}"
        )
    left_out = LeftOut()
    files = match_files(folder, pattern, left_out=left_out, unmatched=f"not matching {pattern}")
    left_out.warn(folder)
    if not files:
        raise DataError(f"no files matching {pattern} in {folder}\nexpected layout:\n{layout}")
    return files


def read_split_file(path: Path, *, layout: str) -> list[str]:
    """The non-empty lines of a split file (one sample id per line)."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}\nexpected layout:\n{layout}")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"split file {path} lists no samples")
    return names
