"""Gaussian-weighted sums over a grid, with length scales in grid cells or in km."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from xdepthrecon.stats.geometry import KM_PER_DEGREE
from xdepthrecon.stats.smoothing import cells_per_scale, gaussian_sum, gaussian_sum_km


def _weights(sigma: float, radius: int) -> torch.Tensor:
    """The Gaussian's weights at offsets -radius ... radius."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    return torch.exp(-0.5 * (offsets / sigma) ** 2)


@pytest.fixture(params=["band matrix", "convolution"])
def summed_by(request, monkeypatch):
    """Each sum computed both ways: a product with band matrices, and a depthwise convolution."""
    smoothing = importlib.import_module("xdepthrecon.stats.smoothing")
    monkeypatch.setattr(smoothing, "MATRIX_CELLS_PER_TAP", 10**6 if request.param == "band matrix" else 0)
    return request.param


def test_a_delta_spreads_into_a_separable_gaussian_cut_at_three_sigma(summed_by):
    field = torch.zeros(1, 2, 21, 31)
    field[0, 0, 10, 15], field[0, 1, 10, 15] = 1.0, -2.0
    out = gaussian_sum(field, (2.0, 3.0))
    rows, columns = _weights(2.0, 6), _weights(3.0, 9)  # radius int(3 sigma + 0.5): 6 rows, 9 columns
    expected = torch.zeros(21, 31)
    expected[4:17, 6:25] = rows[:, None] * columns[None, :]
    torch.testing.assert_close(out[0, 0], expected)
    torch.testing.assert_close(out[0, 1], -2.0 * expected)  # channels apart
    assert float(out[0, 0].sum()) == pytest.approx(float(rows.sum() * columns.sum()), rel=1e-6)
    assert float(out[0, 0, 10, 15]) == 1.0 and out[0, 0, 3].abs().max() == 0 and out[0, 0, :, 5].abs().max() == 0


def test_the_sum_is_zero_outside_the_domain_and_the_kernel_no_wider_than_the_grid(summed_by):
    field = torch.zeros(1, 1, 9, 9)
    field[0, 0, 0, 0] = 1.0  # a corner: half of each axis's kernel falls outside
    out = gaussian_sum(field, (2.0, 2.0))
    weights = _weights(2.0, 6)[6:]  # offsets 0 ... 6
    expected = torch.zeros(9, 9)
    expected[:7, :7] = weights[:, None] * weights[None, :]
    torch.testing.assert_close(out[0, 0], expected)
    ones = gaussian_sum(torch.ones(1, 1, 3, 4), (100.0, 100.0))  # radius capped at size - 1: all cells, ~ weight 1
    torch.testing.assert_close(ones, torch.full((1, 1, 3, 4), 12.0), rtol=1e-3, atol=0)


def test_band_matrices_on_small_grids_and_convolutions_on_wide_ones_sum_alike(monkeypatch):
    """Grids up to MATRIX_CELLS_PER_TAP cells per kernel tap are summed by band matrices; wider ones (a short kernel
    on a global grid) by convolution. Both give the same sums, to float rounding."""
    smoothing = importlib.import_module("xdepthrecon.stats.smoothing")
    field = torch.randn(2, 3, 40, 600, generator=torch.Generator().manual_seed(0))
    for sigma in ((1.0, 1.0), (5.0, 30.0)):  # 7 taps: 600 cells is too wide for a matrix; 31 and 181 taps: not
        reach = smoothing.MATRIX_CELLS_PER_TAP * (2 * int(3 * min(sigma) + 0.5) + 1)
        assert (600 > reach) == (sigma == (1.0, 1.0))
        chosen = gaussian_sum(field, sigma)
        monkeypatch.setattr(smoothing, "MATRIX_CELLS_PER_TAP", 0 if 600 <= reach else 10**6)
        other = gaussian_sum(field, sigma)
        monkeypatch.undo()
        torch.testing.assert_close(chosen, other, rtol=1e-5, atol=1e-4)


def test_a_scale_in_km_is_a_number_of_cells_of_a_two_degree_grid_and_doubles_in_columns_at_60n():
    longitude = torch.arange(-9.0, 10.0, 2.0)
    scale = 4 * KM_PER_DEGREE  # two cells of 2 degrees
    at_equator = cells_per_scale(scale, torch.tensor([-3.0, -1.0, 1.0, 3.0]), longitude)
    assert at_equator == pytest.approx((2.0, 2.0))
    at_60n = cells_per_scale(scale, torch.tensor([57.0, 59.0, 61.0, 63.0]), longitude)
    assert at_60n[0] == pytest.approx(2.0) and at_60n[1] == pytest.approx(4.0)  # cos 60 = 1/2
    across = cells_per_scale(scale, torch.tensor([-1.0, 1.0]), torch.tensor([177.0, 179.0, -179.0, -177.0]))
    assert across == pytest.approx((2.0, 2.0))  # the dateline does not break the spacing
    one = cells_per_scale(KM_PER_DEGREE, torch.tensor([0.0]), torch.tensor([10.0]))  # one cell: 1 degree
    assert one == pytest.approx((1.0, 1.0))


def test_each_item_is_summed_with_its_own_grids_scale():
    generator = torch.Generator().manual_seed(0)
    field = torch.rand(2, 3, 12, 16, generator=generator)
    longitude = torch.arange(16.0)[None].expand(2, -1) * 2.0
    latitude = torch.stack([torch.arange(-11.0, 12.0, 2.0), torch.arange(49.0, 72.0, 2.0)])  # means 0 and 60
    out = gaussian_sum_km(field, 500.0, latitude, longitude)
    for item in range(2):
        sigma = cells_per_scale(500.0, latitude[item], longitude[item])
        torch.testing.assert_close(out[item:item + 1], gaussian_sum(field[item:item + 1], sigma), rtol=0, atol=0)
    delta = torch.zeros(2, 1, 12, 16)
    delta[:, 0, 6, 8] = 1.0
    spread = gaussian_sum_km(delta, 500.0, latitude, longitude)[:, 0, 6]
    # 500 km is 2.25 columns of 2 degrees at the equator, 4.5 at 60N: one column away the weight is larger there
    assert spread[0, 9] == pytest.approx(math.exp(-0.5 / (500.0 / (2 * KM_PER_DEGREE)) ** 2), rel=1e-5)
    assert spread[1, 9] == pytest.approx(math.exp(-0.5 / (500.0 / (KM_PER_DEGREE)) ** 2), rel=1e-5)
