"""The fused Triton per-patch MLP, run by Triton's CPU interpreter, against the slow loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nrdseg
from nrdseg.ops.dynamic_mlp import mlp_param_count
from tests.test_dynamic_mlp import reference_mlp

pytest.importorskip("triton")

#: (coord channels, guidance channels, hidden, classes, s): the paper's shape, the variants,
#: a patch that is not a power of two, and a wide class count.
CASES = [(2, 16, 16, 19, 8), (0, 5, 8, 7, 3), (2, 0, 16, 3, 4), (2, 4, 4, 150, 2)]

_SCRIPT = """
import sys, torch
from nrdseg.ops.dynamic_mlp_inference import patch_mlp_inference
cases = torch.load(sys.argv[1])
outs = [
    patch_mlp_inference(**case, backend="triton")
    for case in cases
]
torch.save(outs, sys.argv[2])
"""


def test_triton_kernel_matches_reference_under_interpreter(tmp_path: Path):
    cases, inputs = [], []
    for coords, guide, hidden, classes, s in CASES:
        n = mlp_param_count(in_channels=coords + guide, hidden_channels=hidden, num_classes=classes)
        params = torch.randn(2, n, 2, 3) * 0.5
        coord_table = torch.randn(coords, s, s) if coords else None
        guidance = torch.randn(2, guide, 2 * s, 3 * s) if guide else None
        if guidance is not None:  # a strided (channels-last) map: the kernel reads any layout
            guidance = guidance.contiguous(memory_format=torch.channels_last)
        cases.append(
            {
                "guidance": guidance,
                "coords": coord_table,
                "params": params,
                "hidden_channels": hidden,
                "num_classes": classes,
            }
        )
        parts = [] if coord_table is None else [coord_table.repeat(1, 2, 3).expand(2, -1, -1, -1)]
        inputs.append(torch.cat([*parts, *([] if guidance is None else [guidance])], dim=1))
    torch.save(cases, tmp_path / "cases.pt")
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
        slow = reference_mlp(x, case["params"], case["hidden_channels"], case["num_classes"])
        assert out.shape == slow.shape
        torch.testing.assert_close(
            out.double(), slow, rtol=1e-5, atol=1e-5 * slow.abs().max().item()
        )
