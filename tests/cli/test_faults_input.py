"""Bad input replayed from public bug reports (issue 11): each case and its kind.

1. settings that are fine alone but not together (slide windows, TTA, eval keys);
2. the training policy "serve the next good sample" leaking into evaluation;
3. type tests that miss nrdseg's own substitutes (SyncBN on CPU) and wrappers;
4. preconditions checked deep inside, after parts that fail earlier;
5, 7. resuming that depends on files, network or checkpoints it does not need;
6. export options that are not checked in the written file.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from timm.layers import BatchNormAct2d
from torch import nn

from nrdseg.analysis.flops import count_flops
from nrdseg.checkpoint import resolve as resolve_module
from nrdseg.checkpoint.format import load_weights, save_pretrained
from nrdseg.checkpoint.work_dir import latest_checkpoint, read_training_state
from nrdseg.cli import main
from nrdseg.config.run import ConfigError, LoaderConfig, TrainConfig, load_config, save_config
from nrdseg.data import DataError, build_dataset
from nrdseg.deploy.export import check_export
from nrdseg.deploy.predict import predict_files
from nrdseg.engine.convert_sync_batchnorm import convert_sync_batchnorm
from nrdseg.engine.optim import parameter_groups
from nrdseg.engine.trainer import Trainer
from nrdseg.evaluation.evaluate import evaluate
from nrdseg.evaluation.inference import infer_logits, slide_logits
from nrdseg.evaluation.report import result_summary
from nrdseg.models.load import load_model
from nrdseg.ops.batchnorm_checks import check_batch_statistics
from nrdseg.ops.cpu_sync_batchnorm import is_sync_batchnorm
from nrdseg.utils.distributed import DistInfo
from tests.conftest import CPU
from tests.datasets_on_disk import SIZE, make_folder, write_image, write_mask
from tests.engine.test_ddp import _free_port
from tests.engine_fixtures import Scenes, make_trainer, one_thread, tiny_model, write_tiny_config

pytestmark = pytest.mark.usefixtures(one_thread.__name__)


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
        ({"eval.max_samples": -1}, r"eval\.max_samples: must be >= 1"),
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
    args = ["eval", *CPU, str(config), "--checkpoint", str(checkpoint)]
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
    args = ["eval", *CPU, str(config), "--checkpoint", str(checkpoint), "--set", f"data.val={val}"]
    assert main([*args, "--set", "eval.max_samples=null"]) == 3  # done in part (issue 21)
    out = capsys.readouterr().out
    assert f"{checkpoint} on folder root {root}\n" in out and "None" not in out
    assert "left out 1 unreadable sample(s) (on_error: skip):\n  " in out
    assert main([*args, "--set", "eval.max_samples=null", "--json"]) == 3
    assert "b.png: cannot read image" in json.loads(capsys.readouterr().out)["skipped"][0]


def test_a_bad_sample_met_by_an_evaluation_worker_is_one_line(tmp_path, capsys):
    """A DataLoader worker's DataError came back as its whole traceback ('Caught DataError
    in DataLoader worker process 0 ...'); training cut it to one line, evaluation did not."""
    root = _val_folder(tmp_path / "val")
    config = write_tiny_config(tmp_path / "tiny.yaml")
    checkpoint = tiny_model().save_pretrained(tmp_path / "ckpt")
    val = f"{{name: folder, root: {root}, split: null, options: {{num_classes: 3}}}}"
    args = ["eval", *CPU, str(config), "--checkpoint", str(checkpoint), "--workers", "1"]
    assert main([*args, "--set", f"data.val={val}", "--set", "eval.max_samples=null"]) == 2
    err = capsys.readouterr().err
    assert "b.png: cannot read image" in err
    assert "Caught" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- 3. type tests that know nrdseg's own substitutes ------------------------------------
def _batch_one_worker(rank: int, port: int, work_dir: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        Trainer(
            model=tiny_model(),
            train_dataset=Scenes(length=4, size=(32, 32)),
            work_dir=work_dir,
            train_cfg=TrainConfig(iters=1, ckpt_interval=1, eval_interval=0),
            loader_cfg=LoaderConfig(batch_size=1, num_workers=0),
            dist=DistInfo(rank=rank, world_size=2, local_rank=0),
            progress=False,
        ).train()
    finally:
        dist.destroy_process_group()


def test_two_cpu_processes_with_one_image_each_train_with_sync_bn(tmp_path):
    mp.start_processes(
        _batch_one_worker, args=(_free_port(), tmp_path), nprocs=2, join=True, start_method="fork"
    )
    assert latest_checkpoint(tmp_path) is not None


def test_sync_batchnorm_checks_know_every_synchronised_class():
    cpu = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), device=torch.device("cpu"))
    cuda = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), device=torch.device("cuda"))
    assert is_sync_batchnorm(cpu[0]) and is_sync_batchnorm(cuda[0])
    assert not is_sync_batchnorm(nn.BatchNorm2d(3))
    # Without other processes even a synchronised norm sees one image: still refused.
    with pytest.raises(ValueError, match="at least 2 images per batch"):
        check_batch_statistics(cpu.train(), 1)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_sync_bn_conversion_keeps_the_activation_of_timm_batchnorm_act(device):
    norm = BatchNormAct2d(3, act_layer=nn.ReLU).eval()
    x = torch.randn(2, 3, 4, 4)
    expected = norm(x)
    assert (expected >= 0).all()
    synced = convert_sync_batchnorm(nn.Sequential(norm), device=torch.device(device))[0]
    assert is_sync_batchnorm(synced) and isinstance(synced.act, nn.ReLU)
    if device == "cpu":  # torch's SyncBatchNorm runs on CUDA only
        torch.testing.assert_close(synced(x), expected)


# -- 4. preconditions checked before the model runs --------------------------------------
@pytest.mark.parametrize("size", [32, 64])
def test_batch_of_one_is_refused_clearly_at_loss_for_any_crop(size):
    model = tiny_model().train()
    images, labels = torch.randn(1, 3, size, size), torch.zeros(1, size, size, dtype=torch.long)
    with pytest.raises(ValueError, match="training needs at least 2 images per batch, got 1"):
        model.loss(images, labels)
    model.loss(images.expand(2, -1, -1, -1), labels.expand(2, -1, -1))  # two images train


def test_trainer_refuses_a_batch_of_one_before_loading_data(tmp_path):
    class NoData(Scenes):
        def __getitem__(self, index):
            raise AssertionError("no sample may load before the batch size is checked")

    with pytest.raises(ValueError, match="at least 2 images per batch, got 1"):
        make_trainer(
            tmp_path, dataset=NoData(), loader=LoaderConfig(batch_size=1, num_workers=0)
        ).train()


# -- 5, 7. resuming needs only the run's own checkpoint ----------------------------------
def _train(config: Path, work: Path, *extra: str) -> int:
    return main(
        ["train", *CPU, str(config), "--work-dir", str(work), "--set", "data.val=null", *extra]
    )


def test_resume_needs_neither_the_pretrained_file_nor_the_network(tmp_path, monkeypatch):
    backbone = tmp_path / "backbone.pth"
    torch.save(tiny_model().backbone.body.state_dict(), backbone)
    config, work = write_tiny_config(tmp_path / "tiny.yaml", iters=1), tmp_path / "work"
    assert _train(config, work, "--set", f"model.pretrained={backbone}") == 0
    backbone.rename(tmp_path / "moved.pth")
    more = ("--resume", "--set", "train.iters=2")
    assert _train(config, work, *more, "--set", f"model.pretrained={backbone}") == 0
    assert yaml.safe_load((latest_checkpoint(work) / "config.yaml").read_text())["model"][
        "pretrained"
    ] == str(backbone)

    create = timm.create_model

    def offline(*args, **kwargs):
        assert not kwargs.get("pretrained"), "resume must not download backbone weights"
        return create(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    assert (
        _train(config, work, "--resume", "--set", "train.iters=3", "--set", "model.pretrained=true")
        == 0
    )
    assert read_training_state(latest_checkpoint(work)).counters.iteration == 3


def test_resume_before_the_first_checkpoint_starts_from_scratch(tmp_path, caplog):
    config, work = write_tiny_config(tmp_path / "tiny.yaml", iters=2), tmp_path / "work"
    (work / "checkpoints" / ".iter_000002.tmp-dead").mkdir(parents=True)  # a kill -9 mid-write
    assert _train(config, work, "--resume") == 0
    assert f"--resume: {work} has no checkpoint yet; starting from iteration 0" in caplog.text
    assert read_training_state(latest_checkpoint(work)).counters.iteration == 2
    assert not (work / "checkpoints" / ".iter_000002.tmp-dead").exists()


# -- 6. export options checked in the written file ---------------------------------------
def test_an_onnx_opset_the_exporter_cannot_write_fails_and_writes_nothing(tmp_path, capsys):
    checkpoint = tiny_model().save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "m.onnx"
    args = ["export", str(checkpoint), "--format", "onnx", "--out", str(out), "--size", "64", "64"]
    assert main([*args, "--opset", "99"]) == 2  # refused before exporting
    assert "--opset 99 does not exist: torch's exporter writes opsets 18 to" in (
        capsys.readouterr().err
    )
    assert main([*args, "--opset", "17", "--verify"]) == 2
    err = capsys.readouterr().err
    assert "the onnx export is not what was asked: opset 18 instead of --opset 17" in err
    assert "use --opset 18 or newer" in err and not out.exists()


class Pinned(nn.Module):
    """Logits of one fixed size, whatever the input: an export pinned to its example."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.new_zeros(1, 5, 8, 8) + images.mean()


def _expected(**check):
    return {
        "format": "onnx",
        "metadata": {"classes": "[]"},
        "num_classes": 5,
        "opset": None,
    } | check


def test_export_check_names_fixed_axes_and_missing_metadata():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["logits"])],
        "pinned",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, "height", 64])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ValueError) as err:
        check_export(data.SerializeToString(), **_expected(opset=20))
    message = str(err.value)
    assert "opset 18 instead of --opset 20" in message
    assert "images has shape [1, 3, 'height', 64]; expected (batch, 3, height, width)" in message
    assert "logits has shape [1, 3, 'height', 64]; expected (batch, 5, height, width)" in message
    assert "metadata classes missing or different" in message

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(Pinned(), torch.zeros(1, 3, 8, 8)), buffer)
    with pytest.raises(ValueError, match=r"the trace is pinned to the example size; metadata"):
        check_export(buffer.getvalue(), **_expected(format="torchscript"))

    buffer = io.BytesIO()
    torch.export.save(torch.export.export(nn.Conv2d(3, 5, 1), (torch.zeros(2, 3, 40, 40),)), buffer)
    with pytest.raises(ValueError, match=r"images has shape \[2, 3, 40, 40\]; expected"):
        check_export(buffer.getvalue(), **_expected(format="exported"))


# -- one checkpoint resolver for load_model, eval, predict and export ---------------------
def test_a_work_dir_without_a_checkpoint_is_named_the_same_by_every_command(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    save_config(load_config(write_tiny_config(tmp_path / "tiny.yaml")), work / "config.yaml")
    image = tmp_path / "in.png"
    write_image(image, seed=0)
    expected = f"{work} is a training work dir without a checkpoint yet (no best/ or checkpoints"
    for argv in (
        ["predict", *CPU, str(work), str(image), "--out", str(tmp_path / "out")],
        ["eval", *CPU, "--checkpoint", str(work)],
        ["export", str(work), "--out", str(tmp_path / "m.onnx")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert expected in err and "data:" not in err, err
    with pytest.raises(FileNotFoundError, match="without a checkpoint yet"):
        load_model(work)


def test_eval_of_a_work_dir_reads_its_own_config(tmp_path, capsys):
    config, work = write_tiny_config(tmp_path / "tiny.yaml", iters=1), tmp_path / "work"
    assert main(["train", *CPU, str(config), "--work-dir", str(work)]) == 0
    capsys.readouterr()
    assert main(["eval", *CPU, "--checkpoint", str(work), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(work / "best")
    checkpoint = latest_checkpoint(work)
    assert main(["eval", *CPU, "--checkpoint", str(checkpoint)]) == 2
    assert f"give CONFIG: {checkpoint} is not a work dir with the config.yaml" in (
        capsys.readouterr().err
    )


def test_every_command_takes_a_hub_checkpoint_through_the_one_resolver(
    tmp_path, capsys, monkeypatch
):
    config, work = write_tiny_config(tmp_path / "tiny.yaml", iters=1), tmp_path / "work"
    assert main(["train", *CPU, str(config), "--work-dir", str(work)]) == 0
    checkpoint, asked = latest_checkpoint(work), []

    def download(repo_id, revision=None):  # the Hub cache, without a network
        asked.append((repo_id, revision))
        return checkpoint

    monkeypatch.setattr(resolve_module, "download_checkpoint", download)
    image = tmp_path / "in.png"
    write_image(image, seed=0)
    for argv in (
        ["predict", *CPU, "hf://org/tiny", str(image), "--out", str(tmp_path / "out")],
        ["eval", *CPU, str(config), "--checkpoint", "hf://org/tiny@v1"],
        ["export", "hf://org/tiny", "--out", str(tmp_path / "m.onnx")],
    ):
        capsys.readouterr()
        assert main(argv) == 0, capsys.readouterr().err
    assert asked == [("org/tiny", None), ("org/tiny", "v1"), ("org/tiny", None)]
    assert (tmp_path / "m.onnx").is_file()


# -- 3 (kind). wrappers and norms that type tests must see through -----------------------
@pytest.mark.parametrize("wrap", [torch.compile, nn.DataParallel], ids=["compile", "dataparallel"])
def test_wrapped_models_save_load_predict_and_evaluate_as_the_model(tmp_path, wrap):
    model = tiny_model().eval()
    wrapped = wrap(model)
    directory = save_pretrained(wrapped, tmp_path / "ckpt")
    loaded = load_model(directory)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    load_weights(wrap(loaded), model.state_dict(), source="test")
    image = tmp_path / "in.png"
    write_image(image, seed=0, size=(40, 40))
    summary = predict_files(wrapped, [image], out_dir=tmp_path / "out", progress=False)
    assert len(summary.written) == 1
    with pytest.raises(ValueError, match="the model predicts 3 classes but the dataset has 6"):
        evaluate(wrapped, build_dataset("synthetic", size=(32, 32), length=1), progress=False)


def test_norm_parameters_of_every_norm_kind_skip_weight_decay_when_asked():
    from timm.layers import EvoNorm2dS0, FilterResponseNormTlu2d, RmsNorm2d

    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), RmsNorm2d(8), EvoNorm2dS0(8), FilterResponseNormTlu2d(8)
    )
    model.append(nn.RMSNorm(8))
    decay, exempt = parameter_groups(model, weight_decay=0.1, decay_norm_and_bias=False)
    assert [p.shape for p in decay["params"]] == [model[0].weight.shape]
    assert len(exempt["params"]) == sum(1 for m in model[1:] for _ in m.parameters())


def test_a_validation_set_with_other_classes_stops_training_before_it_starts(tmp_path, capsys):
    make_folder(tmp_path / "val", ["a"], num_classes=2)
    config, work = write_tiny_config(tmp_path / "tiny.yaml"), tmp_path / "work"
    val = f"{{name: folder, root: {tmp_path / 'val'}, split: null, options: {{num_classes: 2}}}}"
    assert (
        main(["train", *CPU, str(config), "--work-dir", str(work), "--set", f"data.val={val}"]) == 2
    )
    assert "data.val has 2 classes but the model predicts 6" in capsys.readouterr().err
    assert not (work / "metrics.jsonl").exists() and not (work / "checkpoints").exists()


def test_labels_outside_the_classes_are_refused_before_the_forward_pass():
    model = tiny_model().train()
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[0, 0, :3] = torch.tensor([7, 255, -1])
    with pytest.raises(ValueError, match=r"labels hold \[-1, 7\], not classes of this 3-class"):
        model.loss(torch.randn(2, 3, 32, 32), labels)


def test_a_training_set_smaller_than_one_batch_is_refused_when_the_trainer_is_built(tmp_path):
    with pytest.raises(ValueError, match="the training set has 1 samples, fewer than one batch"):
        make_trainer(tmp_path, dataset=Scenes(length=1))
    assert not tmp_path.joinpath("metrics.jsonl").exists()


def test_data_check_counts_samples_left_out_when_the_dataset_was_built(tmp_path, capsys):
    make_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "masks" / "b.png").unlink()
    args = ["data", "check", "folder", "--set", f"root={tmp_path}", "--set", "num_classes=3"]
    assert main([*args, "--set", "on_error=skip"]) == 1
    out = capsys.readouterr().out
    assert "bad sample, left out: image " in out and "b.png has no mask" in out
    assert "folder: 3 samples, 1 bad, 3 classes" in out


def test_flops_of_a_wrapped_model_are_the_model_s():
    model = tiny_model()
    expected = count_flops(model, height=64, width=64)
    assert expected.backbone > 0
    assert count_flops(nn.DataParallel(model), height=64, width=64) == expected


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module._orig_mod."])
def test_backbone_weights_saved_from_a_wrapped_model_load(tmp_path, prefix):
    body = tiny_model().backbone.body
    path = tmp_path / "backbone.pth"
    torch.save({prefix + k: v for k, v in body.state_dict().items()}, path)
    model = tiny_model(pretrained=str(path))
    for key, value in body.state_dict().items():
        torch.testing.assert_close(model.backbone.body.state_dict()[key], value)


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module._orig_mod."])
def test_whole_model_weights_saved_from_a_wrapped_model_give_their_backbone(tmp_path, prefix):
    """An nrdseg model's state dict (``backbone.body.*``) behind a wrapper's prefix."""
    source = tiny_model()
    path = tmp_path / "model.pth"
    torch.save({prefix + k: v for k, v in source.state_dict().items()}, path)
    model = tiny_model(pretrained=str(path))
    assert not model.backbone.load_report.unexpected
    for key, value in source.backbone.body.state_dict().items():
        torch.testing.assert_close(model.backbone.body.state_dict()[key], value)


def test_sync_bn_conversion_keeps_frozen_norms_frozen():
    norm = nn.BatchNorm2d(3).requires_grad_(False)
    for device in ("cpu", "cuda"):
        synced = convert_sync_batchnorm(nn.Sequential(norm), device=torch.device(device))[0]
        assert [p.requires_grad for p in synced.parameters()] == [False, False], device
