"""Which device a command runs on, and ``train.deterministic: true`` on CUDA (the switches
it sets, deterministic backward passes, CUDA generators in the training state).

The CUDA cases skip without a GPU; the CPU cases check the replacements against the ops
they stand in for.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import nrdseg
from nrdseg.engine.build import _set_determinism
from nrdseg.engine.distributed import pick_device
from nrdseg.engine.rng import capture_rng, restore_rng
from nrdseg.models.blocks import GlobalAvgPool2d
from nrdseg.ops.resize import resize, resize_by_matmul
from tests.conftest import tiny_options

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def deterministic_switches():
    """Put torch's global determinism switches back after the test."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:4]
    if saved[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


def test_pick_device_takes_what_is_asked_for_and_names_a_missing_gpu(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda:1': this machine has no usable CUDA GPU"):
        pick_device("cuda:1")


@pytest.mark.parametrize(
    ("size_in", "size_out"),
    [((8, 16), (64, 128)), ((64, 128), (8, 16)), ((7, 9), (20, 33)), ((5, 5), (5, 12))],
)
def test_resize_by_matmul_equals_interpolate_in_values_and_gradients(size_in, size_out):
    x = torch.randn(2, 3, *size_in, dtype=torch.float64, requires_grad=True)
    want = F.interpolate(x, size_out, mode="bilinear", align_corners=False)
    got = resize_by_matmul(x, size_out)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    grad = torch.randn_like(want)
    (want_grad,) = torch.autograd.grad(want, x, grad)
    (got_grad,) = torch.autograd.grad(got, x, grad)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=1e-12)


def test_global_avg_pool_equals_adaptive_avg_pool():
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(GlobalAvgPool2d()(x), torch.nn.AdaptiveAvgPool2d(1)(x))


def test_deterministic_sets_the_cuda_switches(deterministic_switches, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    _set_determinism(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    _set_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark


@needs_cuda
def test_training_rng_state_holds_and_restores_the_cuda_generators():
    state = capture_rng()
    assert len(state["cuda"]) == torch.cuda.device_count()
    first = torch.rand(4, device="cuda")
    restore_rng(state)
    assert torch.equal(torch.rand(4, device="cuda"), first)


@needs_cuda
def test_resize_takes_the_matmul_path_when_training_deterministically(deterministic_switches):
    x = torch.randn(1, 2, 8, 8, device="cuda", requires_grad=True)
    torch.use_deterministic_algorithms(True)  # strict: a non-deterministic kernel raises
    y = resize(x, (32, 32))
    y.square().sum().backward()  # F.interpolate's CUDA backward would raise here
    torch.testing.assert_close(
        y, F.interpolate(x.detach(), (32, 32), mode="bilinear", align_corners=False)
    )


@needs_cuda
@pytest.mark.parametrize("name", nrdseg.list_models())
def test_every_zoo_model_trains_a_step_with_strictly_deterministic_cuda_kernels(
    name, deterministic_switches
):
    _set_determinism(True)
    torch.use_deterministic_algorithms(True)  # strict, unlike the trainer's warn_only
    model = nrdseg.create_model(name, num_classes=3, **tiny_options(name)).to("cuda").train()
    images = torch.randn(2, 3, 64, 64, device="cuda")
    labels = torch.randint(0, 3, (2, 64, 64), device="cuda")
    grads = []
    for _ in range(2):
        model.zero_grad(set_to_none=True)
        model.loss(images, labels)["loss"].backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
