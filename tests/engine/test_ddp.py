"""Two CPU processes (gloo): SyncBN numerics, identical replicas, same result as one process."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nrdseg.checkpoint.work_dir import latest_checkpoint, read_training_state
from nrdseg.config.run import LoaderConfig, OptimConfig, TrainConfig
from nrdseg.engine.convert_sync_batchnorm import convert_sync_batchnorm
from nrdseg.engine.trainer import Trainer
from nrdseg.ops.cpu_sync_batchnorm import CPUSyncBatchNorm
from nrdseg.utils.distributed import DistInfo
from tests.conftest import CPU
from tests.engine_fixtures import (
    RecordingScenes,
    Scenes,
    one_thread,
    tiny_model,
    write_tiny_config,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

WORLD = 2
ITERS = 3
OPTIM = OptimConfig(lr=0.05, warmup_iters=0, min_lr=0.0, grad_accum=2)


def _trainer(work_dir, *, batch_size, info=None):
    torch.manual_seed(0)
    return Trainer(
        model=tiny_model(aux=False),  # no dropout: comparable with a single process
        train_dataset=Scenes(length=16),
        work_dir=work_dir,
        train_cfg=TrainConfig(iters=ITERS, ckpt_interval=ITERS, log_interval=1, eval_interval=0),
        optim_cfg=OPTIM,
        loader_cfg=LoaderConfig(batch_size=batch_size, num_workers=0),
        dist=info,
        progress=False,
    )


def _check_sync_bn(rank):
    """SyncBN over two halves vs BatchNorm over the whole batch: outputs and gradients."""
    torch.manual_seed(0)
    full_x = torch.randn(4, 3, 5, 6, requires_grad=True)
    probe = torch.randn(4, 3, 5, 6)
    reference = nn.BatchNorm2d(3)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    synced = convert_sync_batchnorm(nn.Sequential(reference), device=torch.device("cpu"))[0]
    expected = reference(full_x)
    (expected * probe).sum().backward()

    half = slice(2 * rank, 2 * rank + 2)
    x = full_x.detach()[half].clone().requires_grad_(True)
    out = synced(x)
    (out * probe[half]).sum().backward()
    weight_grad = synced.weight.grad.clone()
    dist.all_reduce(weight_grad)
    return {
        "type": type(synced).__name__,
        "out": (out - expected[half]).abs().max().item(),
        "x_grad": (x.grad - full_x.grad[half]).abs().max().item(),
        "weight_grad": (weight_grad - reference.weight.grad).abs().max().item(),
        "running_var": (synced.running_var - reference.running_var).abs().max().item(),
    }


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {"sync_bn": _check_sync_bn(rank)}
        info = DistInfo(rank=rank, world_size=WORLD, local_rank=0)
        trainer = _trainer(out_dir / "work", batch_size=2, info=info)
        model = trainer.train()
        results["wrapped"] = type(trainer.step_module).__name__
        results["norms"] = sorted(
            {type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__}
        )
        results["state"] = model.state_dict()
        torch.save(results, out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    # fork: the workers inherit the imported modules instead of importing them again.
    mp.start_processes(
        _worker, args=(_free_port(), out_dir), nprocs=WORLD, join=True, start_method="fork"
    )
    ranks = [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return out_dir, ranks


def test_sync_bn_on_cpu_equals_batchnorm_over_the_whole_batch(ddp_run):
    _, ranks = ddp_run
    for result in ranks:
        check = result["sync_bn"]
        assert check["type"] == CPUSyncBatchNorm.__name__
        for key in ("out", "x_grad", "weight_grad", "running_var"):
            assert check[key] < 1e-5, (key, check[key])


def test_replicas_are_identical_and_use_sync_bn(ddp_run):
    out_dir, ranks = ddp_run
    assert all(r["wrapped"] == "DistributedDataParallel" for r in ranks)
    assert all(r["norms"] == ["CPUSyncBatchNorm"] for r in ranks)
    first, second = (r["state"] for r in ranks)
    for key in first:
        assert torch.equal(first[key], second[key]), key
    # Rank 0 alone wrote the checkpoint, with both ranks' random states.
    state = read_training_state(latest_checkpoint(out_dir / "work"))
    assert state.counters.iteration == ITERS and len(state.rng) == WORLD


def test_two_processes_train_like_one_with_the_whole_batch(ddp_run, tmp_path):
    # 2 processes x 2 images with SyncBN == 1 process x 4 images with BatchNorm: the same
    # samples (the global batch is split by rank), statistics and averaged gradients.
    _, ranks = ddp_run
    single = _trainer(tmp_path, batch_size=4).train().state_dict()
    for key, value in single.items():
        torch.testing.assert_close(ranks[0]["state"][key], value, rtol=1e-4, atol=1e-5)


def test_a_run_of_two_processes_resumed_by_one_reads_the_next_samples(ddp_run, tmp_path, caplog):
    # 3 iterations x 2 micro-batches x 2 processes x 2 images: 24 samples, epoch 1 at
    # sample 8. One process with batches of 2 goes on there (counted in batches, the 6
    # batches became 6 x 2 = 12 samples of epoch 0: 12 repeated).
    out_dir, _ = ddp_run
    shutil.copytree(out_dir / "work", tmp_path / "work")
    dataset = RecordingScenes(length=16)
    trainer = Trainer(
        model=tiny_model(aux=False),
        train_dataset=dataset,
        work_dir=tmp_path / "work",
        train_cfg=TrainConfig(iters=ITERS + 2, ckpt_interval=9, log_interval=1, eval_interval=0),
        optim_cfg=OPTIM,
        loader_cfg=LoaderConfig(batch_size=2, num_workers=0),
        progress=False,
    )
    with caplog.at_level(logging.WARNING, logger="nrdseg.train"):
        trainer.resume(latest_checkpoint(tmp_path / "work"))
    assert "written by 2 process(es), resuming with 1: the data order goes on exactly" in (
        caplog.text
    )
    trainer.train()
    epoch_1 = torch.randperm(16, generator=torch.Generator().manual_seed(0 + 1))
    assert dataset.loaded == epoch_1[8:].tolist()


@pytest.mark.slow
def test_torchrun_trains_from_the_command_line(tmp_path):
    config = write_tiny_config(tmp_path / "tiny.yaml")
    work = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", str(WORLD), "-m", "nrdseg.cli", "train", *CPU, str(config)]
    done = subprocess.run(
        [*command, "--work-dir", str(work)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("checkpoints in") == 1  # rank 0 alone talks
    state = read_training_state(latest_checkpoint(work))
    assert state.counters.iteration == 4 and len(state.rng) == WORLD
    assert (work / "best" / "eval.json").is_file()
