"""Bad input replayed from public bug reports (issue 11): each case and its kind.

1. settings that are fine alone but not together (slide windows, TTA, eval keys);
2. the training policy "serve the next good sample" leaking into evaluation;
3. type tests that miss nrdseg's own substitutes (SyncBN on CPU) and wrappers;
4. preconditions checked deep inside, after parts that fail earlier;
5, 7. resuming that depends on files, network or checkpoints it does not need;
6. export options that are not checked in the written file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nrdseg.cli import main
from nrdseg.data import DataError, build_dataset
from nrdseg.engine.config import ConfigError, load_config
from nrdseg.engine.evaluate import evaluate
from nrdseg.engine.inference import infer_logits, slide_logits
from nrdseg.engine.report import result_summary
from tests.datasets_on_disk import SIZE, write_image, write_mask
from tests.engine_fixtures import one_thread, tiny_model, write_tiny_config

__all__ = ["one_thread"]  # a fixture, used by name


class Ones(torch.nn.Module):
    """Logits of ones: any NaN in the result comes from the window count."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.new_ones(images.shape[0], 2, *images.shape[-2:])


# -- 1. settings checked against each other ---------------------------------------------
def test_slide_stride_wider_than_the_crop_is_refused_not_nan():
    image = torch.randn(1, 3, 50, 70)
    for call in (
        lambda: infer_logits(Ones(), image, mode="slide", crop_size=(20, 20), stride=(40, 40)),
        lambda: slide_logits(Ones(), image, crop_size=(20, 20), stride=(10, 40)),
    ):
        with pytest.raises(ValueError, match=r"stride: \[\d+, 40\] is larger than crop_size"):
            call()


@pytest.mark.parametrize("stride", [(20, 20), (7, 13), (1, 20)])
def test_slide_covers_every_pixel_at_every_tta_scale(stride):
    for size in ((50, 70), (19, 21), (41, 23)):
        image = torch.randn(1, 3, *size)
        options = {"mode": "slide", "crop_size": (20, 20), "stride": stride}
        for scales in ((1.0,), (0.5, 0.75, 1.25, 1.75)):
            logits = infer_logits(Ones(), image, scales=scales, flip=True, **options)
            assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"eval.mode": "slide", "eval.crop_size": [16, 16], "eval.stride": [32, 32]},
            r"eval\.stride: \[32, 32\] is larger than crop_size \[16, 16\] in height and width",
        ),
        (
            {"eval.mode": "slide", "eval.crop_size": [16, 40], "eval.stride": [8, 48]},
            r"eval\.stride: \[8, 48\] is larger than crop_size \[16, 40\] in width",
        ),
        (
            {"eval.mode": "whole", "eval.crop_size": [16, 16], "eval.stride": [8, 8]},
            r"eval\.crop_size: crop_size and stride apply to mode 'slide' only",
        ),
        ({"eval.tta": True, "eval.scales": [0.75, 1.0]}, r"eval\.scales: \[0\.75, 1\.0\] would"),
        ({"eval.tta_scales": [1.0, 0.0]}, r"eval\.tta_scales: needs one or more positive"),
        ({"eval.scales": [-1.0]}, r"eval\.scales: needs one or more positive"),
        ({"eval.max_samples": -1}, r"eval\.max_samples: must be >= 0"),
        ({"eval.trimap_widths": [3, 3]}, r"eval\.trimap_widths: expected distinct positive"),
    ],
)
def test_eval_settings_are_checked_together_when_the_config_loads(tmp_path, overrides, expected):
    config = write_tiny_config(tmp_path / "tiny.yaml")
    with pytest.raises(ConfigError, match=expected):
        load_config(config, overrides)


def test_eval_cli_refuses_uncovering_windows_before_scoring(tmp_path, capsys):
    config = write_tiny_config(tmp_path / "tiny.yaml")
    checkpoint = tiny_model().save_pretrained(tmp_path / "ckpt")
    args = ["eval", str(config), "--checkpoint", str(checkpoint)]
    slide = ["eval.mode=slide", "eval.crop_size=[16,16]", "eval.stride=[32,32]"]
    assert main([*args, *[x for s in slide for x in ("--set", s)]]) == 2
    err = capsys.readouterr().err
    assert "eval.stride: [32, 32] is larger than crop_size [16, 16]" in err
    assert main([*args, "--tta", "--set", "eval.scales=[0.5]"]) == 2
    assert "eval.scales: [0.5] would be ignored" in capsys.readouterr().err


# -- 2. "serve the next good sample" is for training only -------------------------------
class AllZero(torch.nn.Module):
    """Predicts class 0 everywhere."""

    num_classes = 3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = images.new_zeros(images.shape[0], 3, *images.shape[-2:])
        logits[:, 0] = 1
        return logits


def _val_folder(root: Path) -> Path:
    """a, c: all class 0; d: all class 1; b: corrupt."""
    for i, (stem, value) in enumerate((("a", 0), ("b", 0), ("c", 0), ("d", 1))):
        write_image(root / "images" / f"{stem}.png", seed=i)
        write_mask(root / "masks" / f"{stem}.png", np.full(SIZE, value))
    (root / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return root


def test_evaluation_counts_each_readable_sample_once_and_names_the_skipped(tmp_path):
    root = _val_folder(tmp_path / "val")
    dataset = build_dataset("folder", root=root, num_classes=3, on_error="skip")
    result = evaluate(AllZero(), dataset, progress=False)
    assert result["aAcc"] == pytest.approx(2 / 3)
    assert len(result["skipped"]) == 1 and "images/b.png: cannot read image" in result["skipped"][0]
    assert result_summary(result)["skipped"] == result["skipped"]
    with pytest.raises(DataError, match="b.png"):  # on_error: raise still stops
        evaluate(AllZero(), build_dataset("folder", root=root, num_classes=3), progress=False)


def test_evaluation_reports_samples_dropped_when_the_dataset_was_built(tmp_path):
    root = _val_folder(tmp_path / "val")
    (root / "images" / "b.png").unlink()
    write_image(root / "images" / "e.png", seed=9)  # an image without a mask
    dataset = build_dataset("folder", root=root, num_classes=3, on_error="skip")
    result = evaluate(AllZero(), dataset, progress=False)
    assert result["aAcc"] == pytest.approx(2 / 3)
    assert ["e.png has no mask" in m for m in result["skipped"]] == [True]


def test_eval_cli_names_the_root_of_a_null_split_and_lists_skipped_samples(tmp_path, capsys):
    root = _val_folder(tmp_path / "val")
    config = write_tiny_config(tmp_path / "tiny.yaml")
    checkpoint = tiny_model().save_pretrained(tmp_path / "ckpt")
    val = (
        f"{{name: folder, root: {root}, split: null, options: {{num_classes: 3, on_error: skip}}}}"
    )
    args = ["eval", str(config), "--checkpoint", str(checkpoint), "--set", f"data.val={val}"]
    assert main([*args, "--set", "eval.max_samples=null"]) == 0
    out = capsys.readouterr().out
    assert f"{checkpoint} on folder root {root}\n" in out and "None" not in out
    assert "left out 1 unreadable sample(s) (on_error: skip):\n  " in out
    assert main([*args, "--set", "eval.max_samples=null", "--json"]) == 0
    assert "b.png: cannot read image" in json.loads(capsys.readouterr().out)["skipped"][0]
