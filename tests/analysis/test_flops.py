"""GMACs counted on the meta device match the paper's tables (README, "Model zoo")."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nrdseg.analysis.flops import FLOP_FORMULAS, count_flops, model_flops
from nrdseg.cli import main

# (model, classes, H, W, part, paper GMACs)
PAPER = [
    ("nrd_r50", 19, 1024, 2048, "decoder", 20.4),
    ("nrd_r50", 19, 1024, 2048, "total", 234.6),
    ("dlv3p_r50", 19, 1024, 2048, "decoder", 76.4),
    ("dlv3p_r50", 19, 1024, 2048, "total", 290.6),
    ("bilinear_r50", 19, 1024, 2048, "total", 215.5),
    ("nrd_r101", 19, 1024, 2048, "total", 390.0),
    ("nrd_r101", 150, 512, 512, "total", 49.0),
    ("nrd_x101", 150, 512, 512, "total", 87.9),
    ("nrd_r101", 60, 480, 480, "total", 42.9),
]


@pytest.mark.parametrize(("name", "classes", "height", "width", "part", "paper"), PAPER)
def test_matches_the_paper_within_3_percent(name, classes, height, width, part, paper):
    report = model_flops(name, num_classes=classes, height=height, width=width)
    assert getattr(report, part) == pytest.approx(paper, rel=0.03)


def test_parts_add_up_and_nrd_decoder_is_analytic():
    report = model_flops("nrd_r50", num_classes=19, height=1024, width=2048)
    assert report.backbone + report.neck + report.decoder == pytest.approx(report.total)
    cells, pixels = 32 * 64, 256 * 512
    controller = cells * (512 * 512 * 9 + 512 * 899)
    guidance = pixels * (256 * 48 * 9 + 48 * 16)
    mlp = pixels * (18 * 16 + 16 * 16 + 16 * 19)
    assert report.decoder == pytest.approx((controller + guidance + mlp) / 1e9, rel=1e-9)


def test_counting_needs_no_real_memory():
    with torch.device("meta"):
        from nrdseg import create_model

        model = create_model("nrd_r50", num_classes=19)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert count_flops(model, height=64, width=64).total > 0


def test_aux_head_is_excluded():
    with_aux = model_flops("nrd_r50", num_classes=19, height=512, width=512)
    without = model_flops("nrd_r50", num_classes=19, height=512, width=512, aux=False)
    assert with_aux.total == without.total
    assert with_aux.params == without.params


def test_cli_json(capsys):
    assert (
        main(["flops", "nrd_r101", "--num-classes", "150", "--shape", "512", "512", "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"backbone", "neck", "decoder", "total", "params"}
    assert result["total"] == pytest.approx(49.0, rel=0.03)


def test_cli_table_and_errors(capsys):
    assert main(["flops", "bilinear_r50", "--num-classes", "19"]) == 0
    out = capsys.readouterr().out
    assert "decoder" in out and "GMACs" in out and "1024x2048" in out
    assert main(["flops", "nope", "--num-classes", "19"]) == 2
    assert "valid models" in capsys.readouterr().err


@pytest.mark.parametrize(("mode", "taps"), [("bilinear", 4), ("bicubic", 16), ("nearest", 0)])
def test_grid_sample_counts_its_taps_per_output_value(mode, taps):
    """torch's counter skips grid_sample; nrdseg counts taps x N x C x H_out x W_out MACs."""

    class Sampler(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            grid = torch.zeros(x.shape[0], 20, 24, 2, device=x.device)
            return torch.nn.functional.grid_sample(x, grid, mode=mode, align_corners=False)

    counter = FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS)
    with counter:
        Sampler()(torch.empty(2, 8, 10, 12, device="meta"))
    assert counter.get_total_flops() / 2 == taps * 2 * 8 * 20 * 24
