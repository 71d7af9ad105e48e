"""DUC: every encoder cell's conv channels become its r x r block of logits."""

from __future__ import annotations

import pytest
import torch

from nrdseg.models.heads import DUCHead


@pytest.mark.parametrize(("ratio", "kernel_size"), [(4, 3), (2, 1)])
def test_cell_channels_become_its_block(ratio, kernel_size):
    head = DUCHead(in_channels=5, num_classes=3, upscale_factor=ratio, kernel_size=kernel_size)
    head.eval()
    x = torch.randn(2, 5, 3, 2)
    with torch.no_grad():
        out = head(x)
        channels = head.conv(x)
    assert out.shape == (2, 3, 3 * ratio, 2 * ratio)
    for c in range(3):
        for y in range(3):
            for x_ in range(2):
                for i in range(ratio):
                    for j in range(ratio):
                        assert out[:, c, y * ratio + i, x_ * ratio + j].equal(
                            channels[:, c * ratio * ratio + i * ratio + j, y, x_]
                        )


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        DUCHead(in_channels=4, num_classes=2, kernel_size=2)
