"""IFA's per-query sampling: the offset from the nearest cell of a coarser map, its code.

Hu et al., "Learning Implicit Feature Alignment Function for Semantic Segmentation",
ECCV 2022. A query pixel of the fine grid (``query`` pixels along an axis) takes the
feature of the coarse cell (``cells`` along that axis) nearest to its centre, plus its
offset from that cell's centre, in half-cells: -1 and 1 are the cell's borders. With
align_corners=False coordinates, query ``i`` sits at ``(i + 0.5) * cells / query`` cell
widths, so its cell is ``floor((2i + 1) * cells / (2 * query))``, the cell that
``F.interpolate(mode="nearest-exact")`` samples (nearest upsampling when ``query`` is a
multiple of ``cells``), and its offset ``(2i + 1) * cells / query - (2 * cell + 1)``, in
[-1, 1). Both depend on one axis only, so a 2-D query's offset code is a row part and a
column part. Integer arithmetic keeps the cells exact at any size; a query centre exactly
on a cell border (possible only when the ratio is not an integer) takes the upper cell,
as nearest-exact does (tests/ops/test_nearest_cell.py checks both on all sizes to 12).
"""

from __future__ import annotations

import torch

#: The ``F.interpolate`` mode that samples each query's nearest cell, as the offsets assume.
NEAREST = "nearest-exact"


def cell_offsets(
    query: int, cells: int, *, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Along one axis: each query pixel's offset from the centre of its nearest cell.

    Returns (query,) of ``dtype`` in [-1, 1), in half-cells (the cell spans (-1, 1), as
    IFA's scaled relative coordinates). With ``query == cells`` every offset is 0. Raises
    ``ValueError`` for a size below 1.
    """
    if query < 1 or cells < 1:
        raise ValueError(f"cell_offsets needs sizes >= 1, got query={query}, cells={cells}")
    twice_centre = (2 * torch.arange(query, device=device) + 1) * cells  # x 2 * query
    cell = torch.div(twice_centre, 2 * query, rounding_mode="floor")
    return (twice_centre - (2 * cell + 1) * query).to(dtype) / query


def fourier_code(offset: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """IFA's code of one axis' offsets: [offset, sin(f offset) per f, cos(f offset) per f].

    ``offset`` (N,) and ``frequencies`` (F,), of one dtype, give (1 + 2F, N): row 0 the
    offset, rows 1..F the sines, rows F+1..2F the cosines.
    """
    phase = frequencies[:, None] * offset[None, :]
    return torch.cat([offset[None, :], phase.sin(), phase.cos()])


def code_rows(num_frequencies: int) -> tuple[list[int], list[int]]:
    """Where each axis' :func:`fourier_code` rows sit in IFA's 2-D code of 2 + 4F values,
    laid out as released: [offset_y, offset_x, sin (F for y, F for x), cos (F y, F x)].

    Returns (rows of y, rows of x), each 1 + 2F indices in :func:`fourier_code`'s order.
    """
    f = num_frequencies
    y = [0, *range(2, 2 + f), *range(2 + 2 * f, 2 + 3 * f)]
    x = [1, *range(2 + f, 2 + 2 * f), *range(2 + 3 * f, 2 + 4 * f)]
    return y, x
