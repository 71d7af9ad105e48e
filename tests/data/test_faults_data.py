"""Bad training data: one clear error naming the file, or skipped and counted.

Every case breaks sample ``b`` of a four-sample ``folder`` dataset. With the default
``on_error="raise"`` the error names the file and the problem; with ``on_error="skip"``
(also from a training config, ``data.train.options.on_error: skip``) the sample is left
out, training completes, and ``metrics.jsonl`` says how many samples were skipped, the
same with DataLoader workers as without.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nrdseg.checkpoint.work_dir import latest_checkpoint, read_training_state
from nrdseg.cli import main
from nrdseg.data import DataError, build_dataset, read_image
from nrdseg.engine.data_order import BatchOrder
from tests.conftest import CPU, tiny_options
from tests.datasets_on_disk import make_folder, write_image, write_mask
from tests.engine_fixtures import one_thread

ORIENTATION = 0x0112


def _corrupt(root: Path) -> None:
    (root / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")


def _truncated(root: Path) -> None:
    data = (root / "images" / "b.png").read_bytes()
    (root / "images" / "b.png").write_bytes(data[: len(data) * 2 // 3])


def _corrupt_mask(root: Path) -> None:
    (root / "masks" / "b.png").write_bytes(b"GIF89a, or so it says")


def _mask_of_another_size(root: Path) -> None:
    write_mask(root / "masks" / "b.png", np.zeros((5, 10)))


def _values_out_of_range(root: Path) -> None:
    values = np.zeros((6, 10))
    values[0, :2] = [7, 200]
    write_mask(root / "masks" / "b.png", values)


def _colour_mask(root: Path) -> None:
    write_image(root / "masks" / "b.png", seed=1)


def _sixteen_bit_mask(root: Path) -> None:
    Image.fromarray(np.full((6, 10), 300, dtype=np.uint16)).save(root / "masks" / "b.png")


def _unreadable(root: Path) -> None:
    path = root / "images" / "b.png"
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root, which chmod 000 does not stop; see the directory cases")


def _directory_for_mask(root: Path) -> None:
    (root / "masks" / "b.png").unlink()
    (root / "masks" / "b.png").mkdir()


def _missing_mask(root: Path) -> None:
    (root / "masks" / "b.png").unlink()


#: name -> (how sample b is broken, the error it gives, found when the dataset is built).
BAD: dict[str, tuple[Callable[[Path], None], str, bool]] = {
    "corrupt image": (
        _corrupt,
        r"images/b\.png: cannot read image, Pillow recognises no image format in it: the file "
        r"is corrupt or truncated, not an image, or in a format that needs a Pillow plugin",
        False,
    ),
    "truncated image": (
        _truncated,
        r"images/b\.png: cannot read image, the file is corrupt or truncated",
        False,
    ),
    "corrupt mask": (
        _corrupt_mask,
        r"masks/b\.png: cannot read mask, Pillow recognises no image format in it",
        False,
    ),
    "mask of another size": (
        _mask_of_another_size,
        r"mask \S+/masks/b\.png is 5x10 \(HxW\) but image \S+/images/b\.png is 6x10",
        False,
    ),
    "mask values out of range": (
        _values_out_of_range,
        r"masks/b\.png: mask values 7, 200 are not labels of this 3-class dataset; "
        r"expected only 0\.\.2, 255",
        False,
    ),
    "colour mask": (
        _colour_mask,
        r"masks/b\.png: mask has mode RGB \(3 channels\); expected a single-channel PNG",
        False,
    ),
    "16-bit mask above 255": (
        _sixteen_bit_mask,
        r"masks/b\.png: 16-bit mask holds values 300 outside 0\.\.255",
        False,
    ),
    "unreadable image (chmod 000)": (
        _unreadable,
        r"images/b\.png: cannot open image \(Permission denied\)",
        False,
    ),
    "directory in place of the mask": (
        _directory_for_mask,
        r"mask \S+/masks/b\.png of image \S+/images/b\.png is not a file",
        True,
    ),
    "missing mask": (
        _missing_mask,
        r"image \S+/images/b\.png has no mask: expected \S+/masks/b\.png",
        True,
    ),
}


def _folder(root: Path) -> Path:
    make_folder(root, ["a", "b", "c", "d"])
    return root


@pytest.mark.parametrize("name", BAD)
def test_a_bad_sample_is_named_or_skipped(tmp_path: Path, name: str) -> None:
    breaks, message, at_build = BAD[name]
    root = _folder(tmp_path)
    breaks(root)
    if at_build:
        with pytest.raises(DataError, match=message):
            build_dataset("folder", root=root, num_classes=3)
    else:
        dataset = build_dataset("folder", root=root, num_classes=3)
        dataset[0]
        with pytest.raises(DataError, match=message):
            dataset[1]

    skipping = build_dataset("folder", root=root, num_classes=3, on_error="skip")
    served = [Path(skipping[i]["path"]).stem for i in range(len(skipping))]
    assert "b" not in served and {"a", "c", "d"} <= set(served)
    assert skipping.skipped == 1
    assert skipping.replaced == (0 if at_build else 1)


def test_a_directory_in_place_of_a_file_is_named(tmp_path: Path) -> None:
    # Unopenable even for root; a folder dataset lists only files as images.
    (tmp_path / "b.png").mkdir()
    with pytest.raises(DataError, match=r"b\.png: cannot open image \(Is a directory\)"):
        read_image(tmp_path / "b.png")
    make_folder(tmp_path / "set", ["a"])
    (tmp_path / "set" / "images" / "b.png").mkdir()
    assert len(build_dataset("folder", root=tmp_path / "set", num_classes=3)) == 1


def _grayscale(root: Path) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (6, 10), dtype=np.uint8)
    Image.fromarray(gray).save(root / "images" / "b.png")


def _rgba(root: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (6, 10, 4), dtype=np.uint8)
    Image.fromarray(pixels, mode="RGBA").save(root / "images" / "b.png")


def _sixteen_bit(root: Path) -> None:
    wide = np.random.default_rng(0).integers(0, 65536, (6, 10), dtype=np.uint16)
    Image.fromarray(wide).save(root / "images" / "b.png")


def _exif_rotated(root: Path) -> None:
    """A camera JPEG stored 10 high x 6 wide whose EXIF says: shown rotated, 6 x 10."""
    (root / "images" / "b.png").unlink()
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    stored = np.random.default_rng(0).integers(0, 256, (10, 6, 3), dtype=np.uint8)
    Image.fromarray(stored).save(root / "images" / "b.jpg", exif=exif.tobytes())


def _palette_mask(root: Path) -> None:
    indices = np.array(Image.open(root / "masks" / "b.png"))
    mask = Image.fromarray(indices, mode="P")
    mask.putpalette([255, 255, 255] * 256)
    mask.save(root / "masks" / "b.png")


@pytest.mark.parametrize(
    "converts", [_grayscale, _rgba, _sixteen_bit, _exif_rotated, _palette_mask]
)
def test_unusual_but_valid_files_are_read(tmp_path: Path, converts) -> None:
    masks = make_folder(tmp_path, ["a", "b"])
    converts(tmp_path)
    sample = build_dataset("folder", root=tmp_path, num_classes=3)[1]
    assert Path(sample["path"]).stem == "b"
    assert sample["image"].shape == (3, 6, 10) and sample["image"].dtype == torch.float32
    assert torch.equal(sample["label"], torch.from_numpy(masks["b"]).long())


def test_split_files_missing_empty_or_naming_unknown_samples(tmp_path: Path) -> None:
    _folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"split file not found: \S+/splits/val\.txt"):
        build_dataset("folder", root=tmp_path, num_classes=3, split="val")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("\n  \n")
    with pytest.raises(DataError, match=r"split file \S+/splits/val\.txt lists no samples"):
        build_dataset("folder", root=tmp_path, num_classes=3, split="val")
    (tmp_path / "splits" / "val.txt").write_text("a\nzebra\n")
    with pytest.raises(DataError, match=r"val\.txt lists 1 stem\(s\) with no image in .*: zebra"):
        build_dataset("folder", root=tmp_path, num_classes=3, split="val")


# -- training on a folder with bad files -------------------------------------------------

SIZE = (32, 32)
STEMS = [f"s{i}" for i in range(9)]
CORRUPT, WRONG_SIZE, NO_MASK = "s2", "s5", "s7"
ITERS = 6


def _training_folder(root: Path) -> list[str]:
    """Nine 32x32 samples: one corrupt image, one mask of another size, one missing mask.
    Returns the stems the dataset keeps, in its order."""
    for i, stem in enumerate(STEMS):
        write_image(root / "images" / f"{stem}.png", seed=i, size=SIZE)
        write_mask(root / "masks" / f"{stem}.png", np.full(SIZE, i % 3))
    (root / "images" / f"{CORRUPT}.png").write_bytes(b"garbage")
    write_mask(root / "masks" / f"{WRONG_SIZE}.png", np.zeros((16, 32)))
    (root / "masks" / f"{NO_MASK}.png").unlink()
    return [stem for stem in STEMS if stem != NO_MASK]


def _training_config(path: Path, root: Path, *, on_error: str) -> Path:
    options = yaml.safe_dump(tiny_options("nrd_r50"), default_flow_style=True).strip()
    path.write_text(
        textwrap.dedent(
            f"""
            model: {{name: nrd_r50, num_classes: null, options: {options}}}
            data:
              train: {{name: folder, root: {root}, split: null,
                       options: {{num_classes: 3, on_error: {on_error}}}}}
              transforms: {{crop_size: [32, 32], scale: [32, 32], photometric: false}}
            loader: {{batch_size: 2, num_workers: 0}}
            optim: {{lr: 0.02, warmup_iters: 0}}
            train: {{iters: {ITERS}, log_interval: 2, ckpt_interval: {ITERS}, eval_interval: 0}}
            """
        )
    )
    return path


def _requests_for_bad_samples(kept: list[str], *, iters: int = ITERS) -> int:
    """What the trainer must report, from the batch order alone: every request for a bad
    sample is one sample served in its place."""
    bad = {kept.index(CORRUPT), kept.index(WRONG_SIZE)}
    order = BatchOrder(dataset_size=len(kept), batch_size=2, seed=0, batches=iters)
    return sum(index in bad for batch in order for index, _ in batch)


@pytest.mark.usefixtures(one_thread.__name__)
def test_training_skips_bad_files_when_asked_and_counts_them_with_any_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    kept = _training_folder(tmp_path / "data")
    expected = _requests_for_bad_samples(kept)
    assert expected >= 2  # the batch order does ask for the bad samples, more than once

    config = _training_config(tmp_path / "raise.yaml", tmp_path / "data", on_error="raise")
    assert main(["train", *CPU, str(config), "--work-dir", str(tmp_path / "raise")]) == 2
    err = capsys.readouterr().err
    assert f"nrdseg train: error: image {tmp_path}/data/images/{NO_MASK}.png has no mask" in err

    config = _training_config(tmp_path / "skip.yaml", tmp_path / "data", on_error="skip")
    for workers in (0, 2):
        work = tmp_path / f"workers{workers}"
        args = ["train", *CPU, str(config), "--work-dir", str(work)]
        assert main([*args, "--set", f"loader.num_workers={workers}"]) == 0
        lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
        assert lines[0] == {"event": "data", "iter": 0, "dropped_samples": 1}
        trains = [e for e in lines if e["event"] == "train"]
        assert [e["iter"] for e in trains] == [2, 4, 6]
        assert trains[-1]["skipped_samples"] == expected, workers
    # The count is part of the training state: resuming the last run (without workers)
    # goes on from it.
    assert read_training_state(latest_checkpoint(work)).counters.skipped_samples == expected
    assert main([*args, "--resume", "--set", f"train.iters={ITERS + 4}"]) == 0
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    longer = _requests_for_bad_samples(kept, iters=ITERS + 4)
    assert longer > expected
    assert [e for e in lines if e["event"] == "train"][-1]["skipped_samples"] == longer

    # A bad file met in a worker: the one line that names it, not the worker's traceback.
    write_mask(tmp_path / "data" / "masks" / f"{NO_MASK}.png", np.zeros(SIZE))
    config = _training_config(tmp_path / "raise.yaml", tmp_path / "data", on_error="raise")
    args = ["train", *CPU, str(config), "--work-dir", str(tmp_path / "workers"), "--set"]
    assert main([*args, "loader.num_workers=2"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert re.fullmatch(
        rf"nrdseg train: error: ({tmp_path}/data/images/{CORRUPT}\.png: cannot read image, "
        rf".*corrupt .*|mask {tmp_path}/data/masks/{WRONG_SIZE}\.png is 16x32 .*)",
        err,
    ), err
