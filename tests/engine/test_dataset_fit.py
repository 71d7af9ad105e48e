"""Settings the model and the data share, each with one owner: a dataset that disagrees with
the model is refused where training or evaluation starts; and a binary run end to end."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
import yaml

import nrdseg
from nrdseg.cli import main
from nrdseg.config.run import load_config
from nrdseg.data import build_dataset, build_transforms
from nrdseg.engine.build import build_val_dataset
from nrdseg.evaluation.evaluate import evaluate
from tests.conftest import CPU, tiny_options
from tests.datasets_on_disk import make_folder, write_image, write_mask
from tests.engine_fixtures import Scenes, events, make_trainer, one_thread, tiny_model

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

HALF = (0.5, 0.5, 0.5)


class IgnoresZero(Scenes):
    """Scenes whose labels say class 0 is ignored (mmseg's ``ignore_index=0`` on the data)."""

    ignore_index = 0


class OneClass(Scenes):
    classes = ("building",)
    num_classes = 1


def test_training_refuses_a_dataset_with_another_ignore_label(tmp_path):
    with pytest.raises(ValueError, match=r"marks ignored pixels 0 but the model ignores 255"):
        make_trainer(tmp_path, dataset=IgnoresZero())


def test_training_refuses_images_normalized_otherwise_than_the_model(tmp_path):
    make_folder(tmp_path / "set", ["a", "b"], num_classes=3)
    model = tiny_model(mean=HALF, std=HALF)
    plain = build_dataset("folder", root=tmp_path / "set", num_classes=3)  # ImageNet's
    with pytest.raises(ValueError, match=r"mean \[0\.485, 0\.456, 0\.406\].*mean \[0\.5, 0\.5"):
        make_trainer(tmp_path / "a", model=model, dataset=plain)
    matching = build_dataset(
        "folder",
        root=tmp_path / "set",
        num_classes=3,
        transforms=build_transforms(train=True, mean=model.mean, std=model.std),
    )
    assert matching.normalization == (HALF, HALF)
    make_trainer(tmp_path / "b", model=model, dataset=matching)


@pytest.mark.parametrize(
    ("dataset", "classes", "message"),
    [
        (OneClass(), 3, r"the training set has 1 class: there is nothing to tell apart; give"),
        (OneClass(), 1, r"the model is binary .* has 1 class\(es\); give the dataset 2 classes"),
        (Scenes(), 1, r"the model is binary .* has 3 class\(es\); set model\.num_classes to 3"),
        (Scenes(), 5, r"the model predicts 5 classes but the training set has 3"),
    ],
)
def test_training_refuses_a_class_count_other_than_the_model_s(tmp_path, dataset, classes, message):
    with pytest.raises(ValueError, match=message):
        make_trainer(tmp_path, model=tiny_model(num_classes=classes), dataset=dataset)


def test_evaluation_refuses_other_class_names_ignore_label_and_normalisation():
    model = tiny_model().eval()
    model.meta = {"classes": ["background", "box", "stripe"]}  # two swapped
    with pytest.raises(ValueError, match=r"lists \['background', 'stripe', 'box'\] \(class 1"):
        evaluate(model, Scenes(length=2), progress=False)
    model.meta = {"classes": list(Scenes.classes)}
    with pytest.raises(ValueError, match=r"marks ignored pixels 0 but the model ignores 255"):
        evaluate(model, IgnoresZero(length=2), progress=False)
    scenes = Scenes(length=2)
    scenes.normalization = (HALF, HALF)
    with pytest.raises(ValueError, match=r"normalizes images with mean \[0\.5, 0\.5, 0\.5\]"):
        evaluate(model, scenes, progress=False)
    assert evaluate(model, Scenes(length=2), trimap_widths=(), progress=False)["mIoU"] >= 0


def test_eval_normalizes_with_the_checkpoint_s_mean_and_std(tmp_path, capsys, monkeypatch):
    """The config says nothing of mean/std; the checkpoint was trained with its own."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        textwrap.dedent(
            """
            data:
              train: {name: synthetic, options: {size: [48, 48], length: 2, seed: 0}}
              val: {name: synthetic, split: val, options: {size: [48, 48], length: 2, seed: 1}}
            """
        )
    )
    model = nrdseg.create_model(
        "nrd_r50", num_classes=6, mean=HALF, std=HALF, **tiny_options("nrd_r50")
    )
    model.meta = {"classes": build_val_dataset(load_config(config)).classes}
    checkpoint = model.save_pretrained(tmp_path / "ckpt")
    loaded = nrdseg.load_model(checkpoint)
    dataset = build_val_dataset(load_config(config), model=loaded)
    assert dataset.normalization == (HALF, HALF)
    expected = evaluate(loaded, dataset, progress=False)
    assert main(["eval", *CPU, str(config), "--checkpoint", str(checkpoint), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["mIoU"] == pytest.approx(expected["mIoU"], rel=1e-4)


def test_train_refuses_validation_classes_other_than_the_training_ones(tmp_path, capsys):
    for name, classes in (("train", ["a", "b"]), ("val", ["b", "a"])):
        for i in range(2):
            write_image(tmp_path / name / "images" / f"s{i}.png", i, size=(32, 32))
            write_mask(tmp_path / name / "masks" / f"s{i}.png", np.eye(32, dtype=np.uint8))
        (tmp_path / name / "classes.yaml").write_text(yaml.safe_dump({"classes": classes}))
    options = yaml.safe_dump(tiny_options("nrd_r50"), default_flow_style=True).strip()
    config = tmp_path / "folders.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            model: {{name: nrd_r50, options: {options}}}
            data:
              train: {{name: folder, root: {tmp_path / "train"}, split: null}}
              val: {{name: folder, root: {tmp_path / "val"}, split: null}}
            train: {{iters: 1}}
            """
        )
    )
    assert main(["train", *CPU, str(config), "--work-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "data.val lists the classes ['b', 'a'] but data.train ['a', 'b']" in err


def test_binary_segmentation_of_0_255_masks_trains_and_scores_both_classes(tmp_path):
    """Issue 21, failure 1, with its fix: 2 classes in the data, one logit in the model. The
    run logged loss 0, grad_norm 0 and mIoU 1 with a softmax over that logit."""
    for i in range(4):
        mask = np.zeros((32, 32), np.uint8)
        mask[4 + i : 20, 6 : 26 - i] = 255
        write_image(tmp_path / "set" / "images" / f"s{i}.png", i, size=(32, 32))
        write_mask(tmp_path / "set" / "masks" / f"s{i}.png", mask)
    (tmp_path / "set" / "classes.yaml").write_text(
        yaml.safe_dump({"classes": ["background", "building"]})
    )
    options = yaml.safe_dump(tiny_options("nrd_r50"), default_flow_style=True).strip()
    folder = f"{{name: folder, root: {tmp_path / 'set'}, split: null, options: {{label_map: {{255: 1}}}}}}"
    config = tmp_path / "binary.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            model: {{name: nrd_r50, num_classes: 1, options: {options}}}
            data:
              train: {folder}
              val: {folder}
              transforms: {{crop_size: [32, 32], scale: [32, 32], photometric: false}}
            loader: {{batch_size: 2, num_workers: 0}}
            optim: {{lr: 0.01, warmup_iters: 0}}
            train: {{iters: 2, log_interval: 1, ckpt_interval: 2, eval_interval: 2}}
            """
        )
    )
    work = tmp_path / "run"
    assert main(["train", *CPU, str(config), "--work-dir", str(work), "--no-progress"]) == 0
    steps = events(work, "train")
    assert all(e["loss"] > 0.1 and e["grad_norm"] > 0 for e in steps), steps
    (scores,) = events(work, "eval")
    assert list(scores["IoU"]) == ["background", "building"]
    assert scores["mIoU"] < 1.0
    model = nrdseg.load_model(work / "best")
    assert model.num_classes == 1 and model.meta["classes"] == ["background", "building"]
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
