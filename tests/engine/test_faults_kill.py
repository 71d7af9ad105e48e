"""``kill -9`` of ``nrdseg train`` at chosen moments, then ``--resume`` in a new process.

After every kill the work dir holds a loadable latest checkpoint, identical to the one an
uninterrupted run wrote at that iteration (or honestly none, when the kill came before
the first), and resuming reaches bit-identical final weights. Each run is a fresh
``python`` process (``tests/fault_injection.py`` wraps one function and SIGKILLs itself);
the case that kills mid checkpoint write runs by default, the others with ``--runslow``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from safetensors.torch import load_file

import nrdseg
from nrdseg.checkpoint.format import WEIGHTS_FILE
from nrdseg.checkpoint.work_dir import (
    latest_checkpoint,
    read_training_state,
    remove_stale_temporaries,
)
from tests.conftest import CPU, tiny_options
from tests.engine_fixtures import write_tiny_config

DRIVER = Path(__file__).resolve().parents[1] / "fault_injection.py"
SOURCE = Path(nrdseg.__file__).resolve().parents[1]  # this checkout's src/, not an installed copy
ITERS = 6  # checkpoints and evaluations at 2, 4, 6; keep_last 1 prunes at 4 and 6


class Kill(NamedTuple):
    """SIGKILL ``when`` the ``nth`` call of ``target`` whose path arguments match ``pattern``."""

    target: str
    when: str
    nth: int
    pattern: str
    #: The checkpoint the work dir must offer afterwards (None: none written yet).
    latest: str | None
    #: A leftover the kill must have left (proof that it struck mid-write), or None.
    leftover: str | None = None


def slow(kill: Kill, name: str):
    """A case for the full suite (--runslow) only."""
    return pytest.param(kill, id=name, marks=pytest.mark.slow)


CASES = [
    pytest.param(
        Kill("save_file", "after", 1, r"iter_000004", "iter_000002", r"\.iter_000004\.tmp-"),
        id="model.safetensors-written-training_state.pt-not",
    ),
    slow(Kill("loss", "before", 2, "", None), "mid-iteration-before-the-first-checkpoint"),
    slow(Kill("loss", "before", 5, "", "iter_000004"), "mid-iteration"),
    slow(Kill("infer_logits", "before", 6, "", "iter_000002"), "during-evaluation"),
    slow(
        Kill("replace", "before", 1, r"/iter_000004$", "iter_000002", r"\.iter_000004\.tmp-"),
        "all-files-written-before-the-directory-rename",
    ),
    slow(
        Kill("atomic_write_bytes", "before", 1, r"latest$", "iter_000002"),
        "first-checkpoint-renamed-before-the-latest-pointer-exists",
    ),
    slow(
        Kill(
            "replace", "before", 2, r"\.latest\.tmp-.* .*/latest$", "iter_000002", r"\.latest\.tmp-"
        ),
        "second-pointer-written-to-a-temporary-before-its-rename",
    ),
    slow(
        Kill("unlink", "before", 1, r"model\.safetensors$", "iter_000004", r"\.iter_000002\.del-"),
        "mid-delete-in-keep-last-pruning",
    ),
]


def nrdseg_process(args: list[str], *, kill: Kill | None = None) -> subprocess.CompletedProcess:
    """``nrdseg ARGS`` in a new process, through the kill driver when ``kill`` is given."""
    if kill is None:
        command = [sys.executable, "-m", "nrdseg.cli", *args]
    else:
        how = [kill.target, kill.when, str(kill.nth), kill.pattern]
        command = [sys.executable, str(DRIVER), *how, "--", *args]
    path = os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_config(tmp_path_factory.mktemp("config") / "tiny.yaml", iters=ITERS)


@pytest.fixture(scope="module")
def straight(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run that keeps every checkpoint, to compare the others with."""
    work = tmp_path_factory.mktemp("straight") / "run"
    done = nrdseg_process(
        ["train", *CPU, str(config), "--work-dir", str(work), "--set", "train.keep_last=9"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return work


def assert_same_weights(directory: Path, expected: Path) -> None:
    got, want = load_file(str(directory / WEIGHTS_FILE)), load_file(str(expected / WEIGHTS_FILE))
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value), f"{directory}: {key} differs from {expected}"


@pytest.mark.parametrize("kill", CASES)
def test_a_killed_run_keeps_a_loadable_checkpoint_and_resumes_exactly(
    kill: Kill, config: Path, straight: Path, tmp_path: Path
) -> None:
    work = tmp_path / "run"
    train = ["train", *CPU, str(config), "--work-dir", str(work), "--set", "train.keep_last=1"]
    killed = nrdseg_process(train, kill=kill)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    if kill.leftover is not None:
        hidden = [p.name for p in (work / "checkpoints").iterdir() if p.name.startswith(".")]
        assert any(re.match(kill.leftover, name) for name in hidden), hidden

    latest = latest_checkpoint(work)
    assert (latest and latest.name) == kill.latest
    if latest is not None:
        model = nrdseg.load_model(latest)
        assert model.meta["classes"][0] == "background"
        assert read_training_state(latest).counters.iteration == int(latest.name[len("iter_") :])
        assert_same_weights(latest, straight / "checkpoints" / latest.name)

    # Always --resume, as a scheduler requeueing the job does: with no checkpoint yet it
    # starts from iteration 0.
    resumed = nrdseg_process([*train, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(
        work / "checkpoints" / f"iter_{ITERS:06d}", straight / "checkpoints" / f"iter_{ITERS:06d}"
    )
    assert_same_weights(work / "best", straight / "best")
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == [
        f"iter_{ITERS:06d}",
        "latest",
    ]
    assert not [p.name for p in work.iterdir() if p.name.startswith(".")]
    events = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert events[-1] == {
        "event": "checkpoint",
        "iter": ITERS,
        "path": str(work / "checkpoints" / f"iter_{ITERS:06d}"),
        "removed": ["iter_000004"],
    }


def test_a_directory_set_aside_by_a_killed_run_is_put_back(tmp_path: Path) -> None:
    # A kill between atomic_directory's two renames leaves the old best/ as .best.old-*
    # and no best/; a kill after them leaves both. The first is restored, the second goes.
    model = nrdseg.create_model("nrd_r50", num_classes=3, **tiny_options("nrd_r50"))
    model.save_pretrained(tmp_path / ".best.old-1a2b3c4d")
    (tmp_path / "checkpoints" / "iter_000002").mkdir(parents=True)
    (tmp_path / "checkpoints" / ".iter_000002.old-5e6f7a8b").mkdir()
    (tmp_path / "checkpoints" / ".iter_000001.del-00aa11bb").mkdir()  # pruning, mid-delete
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [
        ".iter_000001.del-00aa11bb",
        ".iter_000002.old-5e6f7a8b",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "checkpoints"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["iter_000002"]
    nrdseg.load_model(tmp_path / "best")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_kill_and_resume_on_cuda_is_bit_identical_with_deterministic_training(
    config: Path, tmp_path: Path
) -> None:
    """The default case on the GPU: ``train.deterministic: true`` (deterministic kernels,
    CUDA generators in the training state) makes the resumed weights the straight ones."""
    kill = CASES[0].values[0]
    cuda = ["--device", "cuda", "--set", "train.deterministic=true", "--set", "train.keep_last=9"]
    runs = {}
    for name, how in (("straight", None), ("killed", kill)):
        work = tmp_path / name
        train = ["train", str(config), "--work-dir", str(work), *cuda]
        first = nrdseg_process(train, kill=how)
        if how is None:
            assert first.returncode == 0, first.stderr[-3000:]
        else:
            assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
            resumed = nrdseg_process([*train, "--resume"])
            assert resumed.returncode == 0, resumed.stderr[-3000:]
        runs[name] = work / "checkpoints" / f"iter_{ITERS:06d}"
    assert_same_weights(runs["killed"], runs["straight"])
