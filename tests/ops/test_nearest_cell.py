"""IFA's nearest cells, offsets and Fourier codes against a per-query reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nrdseg.ops.nearest_cell import NEAREST, cell_offsets, code_rows, fourier_code

CPU = {"device": torch.device("cpu"), "dtype": torch.float64}


def _centre(index: int, size: int) -> float:
    """Centre of pixel ``index`` of ``size`` in [-1, 1] coordinates (align_corners=False)."""
    return -1 + (2 * index + 1) / size


def _reference_cell(query_index: int, query: int, cells: int) -> tuple[int, float]:
    """The cell whose centre is nearest the query's (the upper one on a tie, as a query on a
    border belongs to the cell starting there) and the offset, scaled by the cell count."""
    q = _centre(query_index, query)
    distances = [abs(q - _centre(k, cells)) for k in range(cells)]
    nearest = max(k for k, d in enumerate(distances) if math.isclose(d, min(distances)))
    return nearest, (q - _centre(nearest, cells)) * cells


def reference_query_inputs(
    features: list[torch.Tensor], frequencies: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """IFA's MLP input, one query pixel at a time: (B, sum_l (2 + 4F + C_l), H, W).

    For each query of an H x W grid and each level: its continuous coordinate, the nearest
    cell, the offset from that cell's centre scaled to (-1, 1), the released code
    [offset (2), sin(M offset) (2F), cos(M offset) (2F)] with M the 2F x 2 frequency matrix
    (F rows (f_y, 0), then F rows (0, f_x)), then the cell's feature; levels concatenated.
    ``frequencies`` is (levels, 2, F) as :class:`~nrdseg.models.heads.IFAHead` holds it.
    """
    height, width = size
    batch = features[0].shape[0]
    columns = []
    for i in range(height):
        row = []
        for j in range(width):
            values = []
            for level, x in enumerate(features):
                ky, oy = _reference_cell(i, height, x.shape[-2])
                kx, ox = _reference_cell(j, width, x.shape[-1])
                f_y, f_x = frequencies[level]
                zeros = torch.zeros_like(f_y)
                matrix = torch.cat([torch.stack([f_y, zeros], 1), torch.stack([zeros, f_x], 1)])
                offset = torch.tensor([oy, ox], dtype=frequencies.dtype)
                phase = matrix @ offset
                code = torch.cat([offset, phase.sin(), phase.cos()])
                values += [code.expand(batch, -1), x[:, :, ky, kx]]
            row.append(torch.cat(values, dim=1))
        columns.append(torch.stack(row, dim=-1))
    return torch.stack(columns, dim=-2)


@pytest.mark.parametrize("query", range(1, 13))
def test_offsets_and_sampled_cells_match_the_per_query_reference(query):
    """Every pair of sizes up to 12, ties included: the offsets, and the cell that IFAHead's
    interpolation samples for each query."""
    for cells in range(1, 13):
        expected = [_reference_cell(i, query, cells) for i in range(query)]
        offset = cell_offsets(query, cells, **CPU)
        assert offset.tolist() == pytest.approx([o for _, o in expected], abs=1e-12)
        assert offset.abs().max() <= 1
        index = torch.arange(cells, dtype=torch.float64)[None, None, :, None]
        sampled = F.interpolate(index, size=(query, 1), mode=NEAREST).flatten()
        assert sampled.long().tolist() == [k for k, _ in expected], (query, cells)


def test_integer_ratio_is_nearest_upsampling_with_a_periodic_offset():
    """Query = 8 x cells: offsets (2j + 1 - 8) / 8 repeating every 8 pixels; 0 at ratio 1."""
    pattern = (2 * torch.arange(8) + 1 - 8) / 8
    assert torch.equal(cell_offsets(24, 3, device=torch.device("cpu")), pattern.repeat(3))
    assert torch.equal(cell_offsets(5, 5, device=torch.device("cpu")), torch.zeros(5))


def test_fourier_code_and_its_place_in_the_released_layout():
    """Each axis' code lands where the released 2-D code [o_y, o_x, sin (2F), cos (2F)] of
    the reference has it."""
    torch.manual_seed(0)
    frequencies = torch.rand(2, 2, 3, dtype=torch.float64) * 10  # (levels, axes, F)
    features = [torch.zeros(1, 0, 7, 5), torch.zeros(1, 0, 3, 2)]
    inputs = reference_query_inputs(features, frequencies, (7, 5))
    rows_y, rows_x = code_rows(3)
    assert sorted(rows_y + rows_x) == list(range(14))
    for level, x in enumerate(features):
        code = inputs[0, 14 * level : 14 * (level + 1)]
        offset_y = cell_offsets(7, x.shape[-2], **CPU)
        offset_x = cell_offsets(5, x.shape[-1], **CPU)
        code_y = fourier_code(offset_y, frequencies[level, 0])  # (7, 7): rows x query rows
        code_x = fourier_code(offset_x, frequencies[level, 1])
        torch.testing.assert_close(code[rows_y], code_y[:, :, None].expand(-1, -1, 5))
        torch.testing.assert_close(code[rows_x], code_x[:, None, :].expand(-1, 7, -1))
        f = frequencies[level, 0, 1].item()
        assert code_y[2, 3].item() == pytest.approx(math.sin(f * offset_y[3].item()))


def test_sizes_below_one_are_refused():
    with pytest.raises(ValueError, match="sizes >= 1"):
        cell_offsets(0, 4, device=torch.device("cpu"))
