"""The fused Triton per-patch MLP, run by Triton's CPU interpreter, against the slow loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nrdseg
from nrdseg.ops.dynamic_mlp_inference import patch_mlp_inference
from tests.models.test_nrd_inference import MLP_CASES, assert_matches_reference, random_mlp_case

pytest.importorskip("triton")

_SCRIPT = """
import sys, torch
from nrdseg.ops.dynamic_mlp_inference import patch_mlp_inference
cases = torch.load(sys.argv[1])
torch.save([patch_mlp_inference(**case, backend="triton") for case in cases], sys.argv[2])
"""


def test_triton_kernel_matches_reference_under_interpreter(tmp_path: Path):
    """``TRITON_INTERPRET`` is read when kernels are defined, hence a fresh process."""
    cases, inputs = zip(*(random_mlp_case(*shape) for shape in MLP_CASES), strict=True)
    torch.save(list(cases), tmp_path / "cases.pt")
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": str(Path(nrdseg.__file__).parents[1]),
    }
    subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "cases.pt"), str(tmp_path / "out.pt")],
        env=env,
        check=True,
        timeout=120,
    )
    outs = torch.load(tmp_path / "out.pt")
    for case, x, out in zip(cases, inputs, outs, strict=True):
        assert_matches_reference(out, case, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("shape", MLP_CASES)
def test_triton_kernel_matches_reference_on_cuda(shape):
    """The compiled kernel itself, where the interpreter case above cannot reach it."""
    case, inputs = random_mlp_case(*shape)
    on_gpu = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in case.items()}
    out = patch_mlp_inference(**on_gpu, backend="triton")
    assert out.is_cuda
    assert_matches_reference(out.cpu(), case, inputs)
