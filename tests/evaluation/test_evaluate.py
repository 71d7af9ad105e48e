"""evaluate() against an explicit per-sample loop, under torch.distributed, and metrics_table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import nrdseg
from nrdseg.evaluation.evaluate import evaluate
from nrdseg.evaluation.inference import infer_logits
from nrdseg.evaluation.metrics import SegMetric
from nrdseg.evaluation.report import metrics_table
from tests.conftest import tiny_options

NUM_CLASSES = 3
WIDTHS = (2, 4)


class TinyDataset:
    """The dataset contract with samples of different sizes; some images were downscaled."""

    classes = ("sky", "road", "car")
    palette = ((0, 0, 255), (128, 128, 128), (255, 0, 0))
    num_classes = NUM_CLASSES
    ignore_index = 255
    sizes = ((40, 56), (34, 46), (48, 32), (36, 60), (44, 50))

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> dict:
        h, w = self.sizes[index]
        gen = torch.Generator().manual_seed(index)
        coarse = torch.randint(0, NUM_CLASSES, (h // 8 + 1, w // 8 + 1), generator=gen)
        label = coarse.repeat_interleave(8, 0).repeat_interleave(8, 1)[:h, :w].clone()
        label[: h // 6] = 255
        signal = F.one_hot(label.clamp(max=NUM_CLASSES - 1), NUM_CLASSES).permute(2, 0, 1)
        image = 2 * signal.float() + torch.randn(3, h, w, generator=gen)
        if index % 2:  # the eval transform rescaled the image; the label keeps its size
            image = F.interpolate(image[None], size=(h // 2, w // 2), mode="bilinear")[0]
        return {"image": image, "label": label, "path": f"sample_{index}.png"}


class ImageAsLogits(torch.nn.Module):
    """Reads the image's three channels as class logits: predictions follow the labels."""

    num_classes = NUM_CLASSES

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.clone()


class RampModel(ImageAsLogits):
    """ImageAsLogits plus a left-to-right ramp across its input favouring the last class.

    Not mirror-symmetric, and its output depends on the window and scale it sees, so
    every inference option changes the predictions.
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-1.5, 1.5, images.shape[-1])
        return images + ramp * torch.tensor([-1.0, 0.0, 1.0])[:, None, None]


def tiny_model() -> nrdseg.Segmentor:
    model = nrdseg.create_model("nrd_r50", num_classes=NUM_CLASSES, **tiny_options("nrd_r50"))
    return model.eval()


def reference_evaluate(model, dataset, **options) -> dict:
    metric = SegMetric(NUM_CLASSES, trimap_widths=WIDTHS)
    for index in range(len(dataset)):
        sample = dataset[index]
        logits = infer_logits(model, sample["image"][None], **options)
        size = sample["label"].shape
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        metric.update(logits.argmax(dim=1), sample["label"][None])
    return {**metric.compute(), "classes": list(dataset.classes), "skipped": []}


def test_evaluate_equals_a_per_sample_loop():
    model, dataset = tiny_model(), TinyDataset()
    result = evaluate(model, dataset, trimap_widths=WIDTHS, progress=False)
    np.testing.assert_equal(result, reference_evaluate(model, dataset))
    assert result["classes"] == ["sky", "road", "car"]
    assert list(result["trimap"]) == list(WIDTHS)


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "slide", "crop_size": (32, 32), "stride": (24, 24)},
        {"flip": True},
        {"scales": (0.5, 1.0)},
    ],
)
def test_evaluate_passes_inference_options_on(options):
    model, dataset = RampModel(), TinyDataset()
    result = evaluate(model, dataset, trimap_widths=WIDTHS, progress=False, **options)
    np.testing.assert_equal(result, reference_evaluate(model, dataset, **options))
    assert result["IoU"] != evaluate(model, dataset, trimap_widths=WIDTHS, progress=False)["IoU"]


def test_logits_are_resized_to_the_label_before_argmax():
    model, dataset = ImageAsLogits(), TinyDataset()
    assert dataset[1]["image"].shape[-2:] != dataset[1]["label"].shape
    result = evaluate(model, dataset, trimap_widths=(), progress=False, max_samples=2)
    metric = SegMetric(NUM_CLASSES, trimap_widths=())
    for index in range(2):
        sample = dataset[index]
        logits = F.interpolate(sample["image"][None], size=sample["label"].shape, mode="bilinear")
        metric.update(logits.argmax(dim=1), sample["label"])
    np.testing.assert_equal(
        result, {**metric.compute(), "classes": list(dataset.classes), "skipped": []}
    )
    assert result["mIoU"] > 0.5


class RecordingDataset(TinyDataset):
    """Remembers which samples were read, to check how the ranks split the data."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __getitem__(self, index: int) -> dict:
        self.seen.append(index)
        return super().__getitem__(index)


def _distributed_worker(rank: int, world: int, init_file: str, checkpoint: str, out: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    dataset = RecordingDataset()
    try:
        result = evaluate(nrdseg.load_model(checkpoint), dataset, progress=False)
        torch.save({"result": result, "seen": dataset.seen}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_distributed_ranks_split_samples_and_sum_matrices(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    args = (2, str(tmp_path / "init"), str(tmp_path / "model"), str(tmp_path))
    mp.spawn(_distributed_worker, args=args, nprocs=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks' thread count, so the logits agree bit for bit
    try:
        single = evaluate(model, TinyDataset(), progress=False)
    finally:
        torch.set_num_threads(threads)
    for rank, samples in enumerate(([0, 2, 4], [1, 3])):
        saved = torch.load(tmp_path / f"rank{rank}.pt")
        assert saved["seen"] == samples
        np.testing.assert_equal(saved["result"], single)


def test_max_samples_and_progress_bar(capsys):
    class FirstTwo(TinyDataset):
        sizes = TinyDataset.sizes[:2]

    model = tiny_model()
    two = evaluate(model, TinyDataset(), trimap_widths=WIDTHS, max_samples=2)
    assert "evaluate 2/2 (100%)" in capsys.readouterr().err  # plain lines: not a terminal
    np.testing.assert_equal(two, reference_evaluate(model, FirstTwo()))


def test_mismatched_model_and_bad_samples_are_rejected():
    dataset = TinyDataset()
    model = nrdseg.create_model("nrd_r50", num_classes=5, **tiny_options("nrd_r50"))
    with pytest.raises(ValueError, match="predicts 5 classes but the dataset has 3"):
        evaluate(model, dataset, progress=False)

    class Broken(TinyDataset):
        def __getitem__(self, index):
            return {"image": super().__getitem__(index)["image"], "path": "x.png"}

    with pytest.raises(KeyError, match=r"dataset\[0\] \(x.png\) has no \['label'\]"):
        evaluate(tiny_model(), Broken(), progress=False)


def test_metrics_table_prints_percent_and_dashes_for_undefined():
    result = {
        "IoU": [0.5, math.nan, 0.0],
        "Acc": [0.25, math.nan, math.nan],
        "mIoU": 0.25,
        "mAcc": 0.25,
        "aAcc": 0.875,
        "trimap": {3: 0.125, 10: 0.2},
        "classes": ["road", "sidewalk", "traffic light"],
    }
    lines = metrics_table(result).splitlines()
    assert lines[0].split() == ["class", "IoU", "Acc"]
    assert lines[1].split() == ["road", "50.00", "25.00"]
    assert lines[2].split() == ["sidewalk", "-", "-"]
    assert lines[3].split() == ["traffic", "light", "0.00", "-"]
    assert [line.split()[-1] for line in lines[5:-1]] == [
        "25.00",
        "25.00",
        "87.50",
        "12.50",
        "20.00",
    ]
    assert lines[8].startswith("trimap 3px mIoU")
    assert lines[-1].startswith("no ground-truth pixels of sidewalk, traffic light: Acc '-'")
    assert "nrdseg data check" in lines[-1]
    present = {**result, "Acc": [0.25, 0.5, 0.75]}
    assert metrics_table(present).splitlines()[-1].startswith("trimap 10px mIoU")
    unnamed = metrics_table({**result, "classes": None})
    assert unnamed.splitlines()[1].split()[0] == "0"
    shares = {**result, "label_fraction": [0.5, 0.0, 0.5], "pred_fraction": [0.75, 0.25, 0.0]}
    lines = metrics_table(shares).splitlines()
    assert lines[0].split() == ["class", "IoU", "Acc", "label%", "pred%"]
    assert lines[1].split() == ["road", "50.00", "25.00", "50.00", "75.00"]
    assert lines[3].split() == ["traffic", "light", "0.00", "-", "50.00", "0.00"]
