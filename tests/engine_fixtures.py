"""Small datasets, models and configs shared by the engine tests."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import nrdseg
from nrdseg.checkpoint.counters import TrainingCounters
from nrdseg.checkpoint.work_dir import TrainingState
from nrdseg.config.run import LoaderConfig, OptimConfig, TrainConfig
from nrdseg.engine.trainer import Trainer
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


class RecordingScenes(Scenes):
    """Scenes that note every index loaded, in order."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.loaded: list[int] = []

    def __getitem__(self, index):
        self.loaded.append(index)
        return super().__getitem__(index)


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


def make_trainer(
    work_dir,
    *,
    model=None,
    dataset=None,
    evaluator=None,
    val_images=None,
    optim=None,
    loader=None,
    **train,
):
    """A one-process Trainer on Scenes, sized for tests; ``train`` overrides TrainConfig."""
    settings = {
        "iters": 6,
        "log_interval": 1,
        "ckpt_interval": 3,
        "keep_last": 5,
        "eval_interval": 0,
    }
    return Trainer(
        model=model if model is not None else tiny_model(),
        train_dataset=dataset if dataset is not None else Scenes(),
        work_dir=work_dir,
        train_cfg=TrainConfig(**{**settings, **train}),
        optim_cfg=optim or OptimConfig(lr=0.05, warmup_iters=0, min_lr=0.0),
        loader_cfg=loader or LoaderConfig(batch_size=2, num_workers=0),
        evaluator=evaluator,
        val_images=val_images,
        progress=False,
    )


def events(work_dir, kind):
    """The ``kind`` events of ``work_dir/metrics.jsonl``, in order."""
    lines = (work_dir / "metrics.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def assert_no_leftovers(work_dir):
    """No temporary or half-deleted directory or file, anywhere a checkpoint is written."""
    for folder in (work_dir, work_dir / "checkpoints"):
        hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
        assert hidden == [], hidden


def training_state(iteration: int) -> TrainingState:
    """A minimal complete training state, for tests that write checkpoints by hand."""
    counters = TrainingCounters(iteration=iteration, consumed_batches=iteration)
    return TrainingState(counters=counters, optimizer={}, scaler={}, rng=[])
