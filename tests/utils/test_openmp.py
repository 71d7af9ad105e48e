"""OpenMP's wait policy: the command line makes it passive before torch loads its runtime."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch  # noqa: F401 (loaded: the runtime can be named)

from nrdseg.utils.openmp import WAIT_POLICY, openmp_runtime, prefer_passive_wait

#: Runs ``nrdseg models`` in a fresh interpreter and prints the wait policy the
#: environment held at the moment torch was first imported (when torch loads OpenMP).
_PROBE = textwrap.dedent(
    """
    import contextlib, io, os, sys

    class Spy:
        seen = []

        def find_spec(self, name, path=None, target=None):
            if name == "torch" and not self.seen:
                self.seen.append(os.environ.get("OMP_WAIT_POLICY", "unset"))

    sys.meta_path.insert(0, Spy())
    from nrdseg.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        main(["models"])
    print(Spy.seen)
    """
)


def _policy_when_torch_loads() -> str:
    env = {k: v for k, v in os.environ.items() if k != WAIT_POLICY}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_command_line_sets_a_passive_wait_policy_before_torch_loads():
    assert _policy_when_torch_loads() == "['PASSIVE']"


def test_prefer_passive_wait_says_whether_it_can_take_effect():
    environ: dict[str, str] = {}
    # torch is imported in this test process: its runtime read the variable already
    assert prefer_passive_wait(environ) is False and environ == {WAIT_POLICY: "PASSIVE"}
    chosen = {WAIT_POLICY: "active"}  # the user's choice is kept
    assert prefer_passive_wait(chosen) is False and chosen == {WAIT_POLICY: "active"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_runtime_torch_loaded_is_named():
    assert openmp_runtime() in {"GNU libgomp", "Intel libiomp5", "LLVM libomp"}
