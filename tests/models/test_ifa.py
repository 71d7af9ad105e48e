"""IFA: the first-layer split against the naive concatenation, init, options and GMACs."""

from __future__ import annotations

import pytest
import torch

import nrdseg
from nrdseg.analysis.flops import model_flops
from nrdseg.models.heads import IFAHead
from tests.conftest import randomize_norms
from tests.ops.test_nearest_cell import reference_query_inputs

#: Map sizes (H, W) per level, stride 4 first: integer ratios, as the zoo's, and others.
SIZES = {
    "integer": [(8, 12), (4, 6), (2, 3), (1, 2)],
    "non-integer": [(6, 10), (4, 7), (3, 4), (2, 3)],
}


def _head(*, seed: int = 0) -> IFAHead:
    """A small head with non-trivial BatchNorm statistics and frequencies."""
    torch.manual_seed(seed)
    head = IFAHead(
        in_channels=(5, 6, 7, 4),
        num_classes=3,
        channels=6,
        hidden_channels=10,
        mlp_channels=7,
        num_frequencies=3,
    ).double()
    with torch.no_grad():
        head.frequencies.mul_(torch.rand_like(head.frequencies) + 0.5)
    randomize_norms(head)
    return head


def _naive(head: IFAHead, features: list[torch.Tensor]) -> torch.Tensor:
    """The paper's order: project, take each query's [code; nearest feature] per level from
    the per-query reference, concatenate, then the whole MLP and the classifier."""
    projected = [p(x) for p, x in zip(head.projections, features, strict=True)]
    inputs = reference_query_inputs(projected, head.frequencies, features[0].shape[-2:])
    return head.classifier(head.mlp(inputs))


@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_split_first_layer_equals_the_naive_concatenation(sizes, mode):
    head = _head()
    head.train(mode == "train")
    features = [
        torch.randn(2, c, *size, dtype=torch.float64)
        for c, size in zip((5, 6, 7, 4), sizes, strict=True)
    ]
    with torch.no_grad():
        fast = head(*features)
        naive = _naive(head, features)
    assert fast.shape == (2, 3, *sizes[0])
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)


def test_frequencies_get_gradients_and_start_as_released():
    head = IFAHead(in_channels=(4, 4, 4, 4), num_classes=2, channels=8)
    expected = torch.tensor([2.0**e for e in torch.linspace(0, 6, 6).tolist()])
    assert head.frequencies.shape == (4, 2, 6)
    torch.testing.assert_close(head.frequencies[2, 1], expected)
    features = [torch.randn(2, 4, 8 // 2**k, 8 // 2**k) for k in range(4)]
    head(*features).square().sum().backward()
    # The stride-4 level's offsets are all 0, so its frequencies cannot learn; the others do.
    assert torch.all(head.frequencies.grad[0] == 0)
    assert torch.all(head.frequencies.grad[1:].abs().sum(-1) > 0)


def test_released_widths_concatenate_1128_values_on_resnet50():
    with torch.device("meta"):
        model = nrdseg.create_model("ifa_r50", num_classes=19)
    widths = [(block[0].in_channels, block[0].out_channels) for block in model.decoder.mlp]
    assert widths == [(1128, 512), (512, 256), (256, 256)]
    assert [p[0].out_channels for p in model.decoder.projections] == [256] * 4


def test_num_frequencies_is_checked():
    with pytest.raises(ValueError, match="num_frequencies must be >= 1"):
        IFAHead(in_channels=(4, 4, 4, 4), num_classes=2, num_frequencies=0)


def _hand_count(classes: int, height: int, width: int, widths: tuple[int, int, int]) -> int:
    """MACs of what runs, at ResNet-50 widths (stride 4, 8, 16: 256, 512, 1024; neck 512)."""
    channels, hidden, mlp = widths
    levels = {4: 256, 8: 512, 16: 1024, 32: 512}
    cells = {s: (height // s) * (width // s) for s in levels}
    projections = sum(cells[s] * c * channels for s, c in levels.items())
    features = sum(cells.values()) * channels * hidden  # first layer, at each level's size
    codes = len(levels) * hidden * 13 * (height // 4 + width // 4)  # 13 rows per axis
    pixels = cells[4]
    return projections + features + codes + pixels * (hidden * mlp + mlp * mlp + mlp * classes)


@pytest.mark.parametrize(
    ("name", "widths"), [("ifa_r50", (256, 512, 256)), ("ifa_r50_slim", (128, 256, 128))]
)
@pytest.mark.parametrize(("classes", "height", "width"), [(19, 1024, 2048), (150, 512, 512)])
def test_decoder_gmacs_are_the_hand_count(name, widths, classes, height, width):
    report = model_flops(name, num_classes=classes, height=height, width=width)
    expected = _hand_count(classes, height, width, widths)
    assert report.decoder == pytest.approx(expected / 1e9, rel=1e-9)
