"""Bad input replayed from public bug reports (issue 11): each case and its kind.

1. settings that are fine alone but not together (slide windows, TTA, eval keys);
2. the training policy "serve the next good sample" leaking into evaluation;
3. type tests that miss nrdseg's own substitutes (SyncBN on CPU) and wrappers;
4. preconditions checked deep inside, after parts that fail earlier;
5, 7. resuming that depends on files, network or checkpoints it does not need;
6. export options that are not checked in the written file.
"""

from __future__ import annotations

import pytest
import torch

from nrdseg.cli import main
from nrdseg.engine.config import ConfigError, load_config
from nrdseg.engine.inference import infer_logits, slide_logits
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
