"""``nrdseg train`` on your own data: labels counted at start, fine-tuning with --init-from."""

from __future__ import annotations

import logging
import re
import textwrap

import numpy as np
import pytest
import yaml

import nrdseg
from nrdseg.cli import main
from tests.conftest import CPU, tiny_options
from tests.datasets_on_disk import write_image, write_mask
from tests.engine_fixtures import one_thread, write_tiny_config

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    return write_tiny_config(tmp_path / "configs" / "tiny.yaml", iters=2)


def test_training_stops_on_zero_255_masks_with_the_fix(tmp_path, capsys):
    """Failure 1 of issue 16: training used to run and report mIoU 100 on class 0 alone."""
    for i in range(3):
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 4:30] = 255
        write_image(tmp_path / "set" / "images" / f"s{i}.png", i, size=(32, 32))
        write_mask(tmp_path / "set" / "masks" / f"s{i}.png", mask)
    config = tmp_path / "folder.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            model: {{name: nrd_r50, options: {
                yaml.safe_dump(tiny_options("nrd_r50"), default_flow_style=True).strip()
            }}}
            data:
              train: {{name: folder, root: {tmp_path / "set"}, split: null,
                       options: {{num_classes: 2}}}}
            train: {{iters: 1}}
            """
        )
    )
    work = tmp_path / "run"
    assert main(["train", *CPU, str(config), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert "masks hold only 0 and 255" in err and "data.check_labels: false" in err
    assert not (work / "checkpoints").exists()
    # The fix names the config key, not the data check's bare option: following it trains.
    fix = re.search(r"\(CLI: --set '([^']+)'\)", err)
    assert fix and fix.group(1) == "data.train.options.label_map={255: 1}"
    assert main(["train", *CPU, str(config), "--work-dir", str(work), "--set", fix.group(1)]) == 0


def test_train_init_from_a_checkpoint_of_another_class_count(config_file, tmp_path, caplog):
    source = nrdseg.create_model("nrd_r50", num_classes=19, **tiny_options("nrd_r50"))
    checkpoint = source.save_pretrained(tmp_path / "cityscapes_ckpt")
    work = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="nrdseg"):
        args = [
            "train",
            *CPU,
            str(config_file),
            "--work-dir",
            str(work),
            "--init-from",
            str(checkpoint),
        ]
        assert main(args) == 0
    assert "init_from (19 classes -> 6)" in caplog.text
    assert "decoder.controller.1.weight (checkpoint (899, 32, 1, 1)" in caplog.text
    assert "training labels:\nlabel statistics over all 8 samples" in caplog.text
    assert "validation labels:\nlabel statistics over all 4 samples" in caplog.text
    saved = yaml.safe_load((work / "config.yaml").read_text())
    assert saved["model"]["init_from"] == str(checkpoint)
    assert nrdseg.load_model(work / "best").num_classes == 6


def test_transforms_as_a_dataset_option_points_to_data_transforms(config_file, capsys):
    args = ["train", *CPU, str(config_file), "--set", "data.train.options.transforms=flip"]
    assert main(args) == 2
    assert "data.train.options.transforms: a dataset's transforms is a Python callable" in (
        capsys.readouterr().err
    )
