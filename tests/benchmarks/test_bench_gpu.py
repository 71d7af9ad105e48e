"""benchmarks/bench_gpu.py runs end to end on a CPU with --quick and prints every section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"
SECTIONS = [
    "## 1. predict on 6 PNG frames",
    "## 2. whole models, batch 2",
    "## 2. whole models, batch 1",
    "## 3. decoders, 64x128, 19 classes, batch 1",
    "## 3. decoders, 64x64, 150 classes, batch 1",
    "## 4. per-patch MLP alone",
    "## 5. training",
    "## Ratios",
    "## Targets (issue 15)",
]


def _run(*extra: str) -> str:
    pytest.importorskip("segmentation_models_pytorch")
    src = str(SCRIPT.parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(SCRIPT), "--quick", "--device", "cpu", "--threads", "1"]
    result = subprocess.run(
        [*command, "--workers", "1", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quick_run_prints_every_section_ratio_and_target():
    out = _run("--no-compile")
    for heading in SECTIONS:
        assert heading in out
    assert "| predict: workers + writers, bf16, channels_last |" in out
    assert "| nrd_r50 labels / SMP DeepLabV3+, batch 1, eager fp32 NCHW | " in out
    assert "| NRD decoder CL bf16 / NCHW fp32, batch 2 | " in out
    assert "| torch, batch 2 |" in out  # no Triton on a CPU: the PyTorch per-patch MLP
    assert "trainer s/it within 15% of the model step" in out
    assert "compiled" not in out


@pytest.mark.slow
def test_quick_run_with_compiled_rows():
    out = _run("--compile-backend", "eager", "--skip", "train")
    assert "| predict: same, --compile |" in out
    assert "| SMP DeepLabV3+, compiled bf16 CL |" in out
    assert "## 5. training" not in out
