"""Scale bands of a field: octave scales from the grid's spacing, bands that sum to the field, gaps and wrapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdepthrecon.stats.scales import octave_scales_km, scale_bands
from xdepthrecon.stats.smoothing import gaussian_mean


def test_octave_scales_start_at_the_grid_spacing_and_stop_at_the_largest():
    latitude, longitude = np.linspace(30.0, 40.0, 41), np.linspace(-60.0, -50.0, 41)  # 0.25 degrees near 35N
    scales = octave_scales_km(latitude, longitude, 500.0)
    spacing = 0.25 * 111.19 * (1.0 + np.cos(np.deg2rad(35.0))) / 2.0
    assert scales[0] == pytest.approx(spacing, rel=0.01)
    np.testing.assert_allclose(np.diff(np.log2(scales)), 1.0)
    assert scales[-1] <= 500.0 < 2.0 * scales[-1]
    assert octave_scales_km(np.linspace(-60, 60, 9), np.arange(0.0, 360.0, 15.0), 500.0) == ()  # 15-degree cells


def test_bands_sum_to_the_field_and_sort_its_scales():
    rng = np.random.default_rng(0)
    latitude, longitude = np.linspace(30.0, 40.0, 48), np.linspace(-60.0, -48.0, 48)
    y, x = np.meshgrid(np.arange(48), np.arange(48), indexing="ij")
    broad = torch.tensor(np.sin(2 * np.pi * x / 48) * np.cos(2 * np.pi * y / 48), dtype=torch.float32)
    fine = torch.tensor(rng.normal(size=(48, 48)), dtype=torch.float32)
    field = (broad + 0.5 * fine)[None]
    scales = octave_scales_km(latitude, longitude, 200.0)
    bands = scale_bands(field, torch.ones_like(field, dtype=torch.bool), scales, latitude=latitude, longitude=longitude)
    assert bands.shape == (1, len(scales) + 1, 48, 48)
    torch.testing.assert_close(bands.sum(dim=1), field, atol=1e-5, rtol=0)
    inner = (slice(8, 40), slice(8, 40))  # away from the edges
    correlation = lambda a, b: np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1]  # noqa: E731
    assert correlation(bands[0, -1], broad) > 0.95  # the broadest band is the broad signal
    assert correlation(bands[0, 0], fine) > 0.8  # the finest, the cell-to-cell noise


def test_a_gap_has_no_finest_band_and_lends_nothing_to_its_neighbours():
    latitude, longitude = np.linspace(30.0, 35.0, 21), np.linspace(-60.0, -55.0, 21)
    field = torch.full((1, 21, 21), 2.0)
    field[0, 10, 10] = float("nan")
    valid = torch.isfinite(field)
    field[0, 5, 5] = 1000.0  # an invalid cell's value is ignored
    valid[0, 5, 5] = False
    bands = scale_bands(field, valid, octave_scales_km(latitude, longitude, 200.0), latitude=latitude,
                        longitude=longitude)
    assert torch.isfinite(bands).all()
    assert bands[0, 0, 10, 10] == 0.0 and bands[0, 0, 5, 5] == 0.0
    torch.testing.assert_close(bands.sum(dim=1), torch.full((1, 21, 21), 2.0))  # gaps filled from around


def test_the_means_wrap_in_longitude_on_a_global_grid():
    weights = torch.ones(1, 1, 5, 36)
    field = torch.zeros(1, 1, 5, 36)
    field[..., 0] = 1.0
    wrapped = gaussian_mean(field, weights, (1.0, 2.0), periodic=True)
    plain = gaussian_mean(field, weights, (1.0, 2.0))
    assert wrapped[0, 0, 2, -1] > 0.1 and plain[0, 0, 2, -1] == 0.0  # across the seam only when wrapped
    torch.testing.assert_close(wrapped[..., 1], wrapped[..., -1])
