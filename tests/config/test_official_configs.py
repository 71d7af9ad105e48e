"""The paper configs say what the authors' configs say (issue 12, parts 3 and 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

import nrdseg
from nrdseg.config.run import load_config
from nrdseg.engine.build import build_val_dataset
from nrdseg.evaluation.evaluate import evaluate
from tests.conftest import tiny_options
from tests.datasets_on_disk import SIZE, make_pascal_context

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("config", ["pascal_context", "pascal_context_59"])
def test_pascal_context_evaluates_the_whole_image_resized_to_520(config, tmp_path):
    make_pascal_context(tmp_path, split="val", count=1)
    path = CONFIGS / config / "nrd_r101.yaml"
    cfg = load_config(path, {"data.val.root": str(tmp_path / "VOCdevkit" / "VOC2010")})
    options = cfg.eval.inference_options()
    assert (options["mode"], options["crop_size"], options["stride"]) == ("whole", None, None)
    model = nrdseg.create_model(
        cfg.model.name, num_classes=cfg.model.num_classes, **tiny_options(cfg.model.name)
    ).eval()
    seen = []
    model.backbone.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    result = evaluate(model, build_val_dataset(cfg), progress=False, **options)
    # A 6 x 10 image: long edge to 520 (312 x 520), padded to /32 inside, in one piece.
    assert SIZE == (6, 10)
    assert seen == [(1, 3, 320, 544)]
    assert 0.0 <= result["aAcc"] <= 1.0
