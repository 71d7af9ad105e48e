"""Small datasets and stand-ins for the engine tests.

``nrdseg.data`` and ``nrdseg.engine.evaluate`` are written alongside the engine; until they
are importable, :func:`use_stand_ins` puts minimal modules with the same contract in
their place, so the engine's glue to them is exercised either way.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
import yaml

import nrdseg
from tests.conftest import tiny_options

CLASSES = ["background", "stripe", "box"]
PALETTE = [[0, 0, 0], [200, 40, 40], [40, 40, 200]]


class Scenes:
    """Deterministic 3-class scenes a tiny model learns in a few steps.

    Class colours differ in mean, so the task is learnable; a random horizontal flip
    (from torch's global generator) stands in for augmentation.
    """

    classes = CLASSES
    palette = PALETTE
    num_classes = 3
    ignore_index = 255

    def __init__(self, *, length: int = 16, size: tuple[int, int] = (64, 64), flip: bool = True):
        self.length = length
        self.size = size
        self.flip = flip

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        g = torch.Generator().manual_seed(index)
        h, w = self.size
        label = torch.zeros(h, w, dtype=torch.int64)
        top = int(torch.randint(0, h - 16, (1,), generator=g))
        label[top : top + 8] = 1
        y, x = (int(v) for v in torch.randint(0, min(h, w) - 24, (2,), generator=g))
        label[y : y + 20, x : x + 20] = 2
        label[0, :3] = 255
        means = torch.tensor([[-0.8, 0.0, 0.8], [0.6, -0.6, 0.0], [0.0, 0.7, -0.7]])
        image = means[:, label.clamp(max=2)] + 0.3 * torch.randn(3, h, w, generator=g)
        if self.flip and torch.rand(()) < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return {"image": image.float(), "label": label, "path": f"scene_{index}.png"}


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and do not stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(name: str = "nrd_r50", *, num_classes: int = 3, **overrides) -> nrdseg.Segmentor:
    return nrdseg.create_model(name, num_classes=num_classes, **{**tiny_options(name), **overrides})


def write_tiny_config(path: Path, *, iters: int = 4) -> Path:
    """A complete config for a few CPU iterations of a tiny NRD on synthetic 64x64 scenes."""
    options = yaml.safe_dump(tiny_options("nrd_r50"), default_flow_style=True).strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        textwrap.dedent(
            f"""
            model: {{name: nrd_r50, num_classes: null, options: {options}}}
            data:
              train: {{name: synthetic, options: {{size: [64, 64], length: 8, seed: 0}}}}
              val: {{name: synthetic, split: val, options: {{size: [64, 64], length: 4, seed: 1}}}}
              transforms: {{crop_size: [64, 64], scale: [64, 64], photometric: false}}
            loader: {{batch_size: 2, num_workers: 0}}
            optim: {{lr: 0.02, warmup_iters: 2}}
            train: {{iters: {iters}, log_interval: 1, ckpt_interval: 2, eval_interval: 2}}
            eval: {{max_samples: 4}}
            """
        )
    )
    return path


# -- stand-ins for modules written by others ---------------------------------------------
def _build_dataset(name: str, *, transforms=None, split: str = "train", **kwargs):
    if name != "synthetic":
        raise ValueError(f"the stand-in only builds 'synthetic', not {name!r}")
    height, width = kwargs.get("size", (64, 64))
    return Scenes(length=kwargs.get("length", 16), size=(height, width), flip=split == "train")


def _build_transforms(*, train: bool, **kwargs):
    return {"train": train, **kwargs}


def _evaluate(model, dataset, *, device="cpu", progress=True, max_samples=None, **_options):
    """Whole-image confusion-matrix IoU, the contract of the real evaluate()."""
    n = dataset.num_classes
    confusion = torch.zeros(n, n, dtype=torch.int64)
    count = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    with torch.no_grad():
        for index in range(count):
            sample = dataset[index]
            pred = model(sample["image"][None].to(device)).argmax(1)[0].cpu()
            keep = sample["label"] != dataset.ignore_index
            pairs = sample["label"][keep] * n + pred[keep]
            confusion += torch.bincount(pairs, minlength=n * n).view(n, n)
    tp = confusion.diag().double()
    union = confusion.sum(0) + confusion.sum(1) - confusion.diag()
    iou = tp / union.clamp(min=1)
    acc = tp / confusion.sum(1).clamp(min=1)
    return {
        "mIoU": float(iou[union > 0].mean()),
        "mAcc": float(acc.mean()),
        "aAcc": float(tp.sum() / confusion.sum()),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
        "trimap": {},
        "classes": list(dataset.classes),
    }


def _format_table(result) -> str:
    return "\n".join(f"{c} {v:.4f}" for c, v in zip(result["classes"], result["IoU"], strict=True))


def _install(monkeypatch: pytest.MonkeyPatch, name: str, **attributes) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)


def use_stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``nrdseg.data`` and ``nrdseg.engine.evaluate`` importable for this test."""
    _install(
        monkeypatch,
        "nrdseg.data",
        build_dataset=_build_dataset,
        build_transforms=_build_transforms,
    )
    _install(monkeypatch, "nrdseg.engine.evaluate", evaluate=_evaluate, format_table=_format_table)
