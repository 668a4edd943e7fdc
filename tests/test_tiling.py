"""Overlapping tiles blended with a smooth window: tiled == untiled away from edges, no seams."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xdepthrecon.tiling import Tiling, tiled


def pointwise(field: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.tanh(field * 2.0) + t.reshape(-1, 1, 1, 1) * 0.01


def smoothing(field: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(field, 3, stride=1, padding=1, count_include_pad=False)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [(30, 50, 16, 4), (16, 16, 16, 4), (9, 40, 16, 6)])
def test_pointwise_function_tiled_equals_untiled(periodic, height, width, tile, overlap):
    field = torch.randn(3, 2, height, width, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 5, 9])
    run = tiled(pointwise, Tiling(height, width, tile, overlap, periodic))
    torch.testing.assert_close(run(field, t), pointwise(field, t))


def test_local_function_equals_untiled_away_from_blending_zones_and_blends_smoothly():
    field = torch.randn(1, 1, 40, 64, generator=torch.Generator().manual_seed(1))
    tiling = Tiling(40, 64, 24, 8)
    out = tiled(smoothing, tiling)(field, torch.tensor([0]))
    whole = smoothing(field, None)
    wrong = torch.zeros(40, 64, dtype=torch.bool)  # cells a tile computes without their true neighbours
    for rows, columns in tiling.tiles():
        for edge_row in {int(rows[0]), int(rows[-1])} - {0, 39}:
            wrong[edge_row, columns] = True
        for edge_column in {int(columns[0]), int(columns[-1])} - {0, 63}:
            wrong[rows, edge_column] = True
    interior = ~wrong
    assert interior.float().mean() > 0.8
    torch.testing.assert_close(out[0, 0][interior], whole[0, 0][interior], atol=1e-6, rtol=1e-6)
    assert float((out - whole).abs().max()) < 0.5 * float(whole.abs().max())


def test_constant_blends_to_the_same_constant_on_a_global_grid():
    field = torch.full((2, 3, 20, 72), 4.0)
    out = tiled(lambda f, t: f, Tiling(20, 72, 16, 6, periodic=True))(field, torch.tensor([0, 0]))
    torch.testing.assert_close(out, field)


def test_periodic_tiles_wrap_and_bad_overlap_is_refused():
    columns = Tiling(10, 50, 16, 4, periodic=True).columns
    assert any(int(c[-1]) < int(c[0]) for c in columns)  # one tile crosses the dateline
    with pytest.raises(ValueError, match="overlap must be >= 0 and smaller than the tile"):
        Tiling(10, 10, 8, 8)
