"""Shared test settings: small thread count, deterministic seeds, tiny models."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)

#: Options that shrink any zoo model to a few hundred thousand parameters for CPU tests.
TINY = {"backbone": "test_resnet", "neck_channels": 32, "aux_channels": 16}
TINY_NRD = {**TINY, "controller_channels": 32}
#: CLI flags that pin a command to the CPU, so that a test means the same on a GPU machine.
CPU = ("--device", "cpu")


def tiny_options(name: str) -> dict:
    """TINY plus 32 for each width option the zoo entry's head declares."""
    from nrdseg.models.zoo import width_options

    return {**TINY, **dict.fromkeys(width_options(name), 32)}


def randomize_norms(module: torch.nn.Module) -> None:
    """Non-trivial running statistics and affine parameters in every BatchNorm2d, so that a
    fast path that folds, reorders or splits around a norm has work to do."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1.0, 1.0)
            m.running_var.uniform_(0.3, 3.0)
            if m.affine:
                with torch.no_grad():
                    m.weight.uniform_(0.5, 2.0)
                    m.bias.uniform_(-1.0, 1.0)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", help="also run the tests marked slow (the full suite)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` tests unless asked for: ``--runslow`` (everything) or ``-m slow``."""
    if config.getoption("--runslow") or "slow" in config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (all tests) or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
