"""The seasonal background of temperature: seasonal fit plus SST regression per level, filled into held-out
cells and below the bottom, cross-validated, saved with an analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xdepthrecon
from xdepthrecon.analysis.background import SeasonalBackground, SlopeChoice, _nearest, cross_validated_background
from xdepthrecon.analysis.classical import Analysis
from xdepthrecon.analysis.departures import DepartureAnalysis
from xdepthrecon.stats.seasonal import seasonal_design

#: SST slope of each level of the synthetic temperature: the surface follows the SST, the deep does not.
SLOPES = np.array([1.0, 0.6, 0.2, 0.0])


def _seasonal_temperature(lats: int = 12, lons: int = 24, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    """Temperature (time, channel = depth level, lat, lon) that is exactly a smooth mean + annual cycle + a
    slope per level x an SST anomaly, and that SST (degC)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2021-01-15", periods=12, freq="MS") + pd.Timedelta(days=14)
    lat = np.linspace(-55.0, 55.0, lats)
    lon = -180.0 + (np.arange(lons) + 0.5) * 360.0 / lons
    design = seasonal_design(time.values, 1)  # the fit's own regressors: the cycle is exactly representable
    phase = np.arctan2(design[:, 2], design[:, 1])
    surface = 15.0 + 10.0 * np.cos(np.deg2rad(lat))[:, None] + np.sin(np.deg2rad(lon))[None]
    mean = 4.0 + (surface[None] - 4.0) * np.array([1.0, 0.7, 0.4, 0.1])[:, None, None]  # colder with depth
    amplitude = 0.1 * mean
    sst_anomaly = rng.normal(size=(12, lats, lons))
    sst = surface + 1.5 * np.cos(phase)[:, None, None] + sst_anomaly
    temperature = (mean[None] + amplitude[None] * np.cos(phase)[:, None, None, None]
                   + SLOPES[None, :, None, None] * sst_anomaly[:, None])
    coords = {"time": time, "latitude": lat, "longitude": lon}
    field = xr.DataArray(temperature, dims=("time", "channel", "latitude", "longitude"), coords=coords)
    return field, xr.DataArray(sst, dims=("time", "latitude", "longitude"), coords=coords)


def _at(background: SeasonalBackground, field: xr.DataArray, sst: xr.DataArray) -> np.ndarray:
    return background.at(field.time.values, field.latitude.values, field.longitude.values, sst.values).numpy()


def test_the_fit_recovers_the_seasonal_cycle_and_each_levels_sst_slope():
    field, sst = _seasonal_temperature()
    background = SeasonalBackground.fit(field, sst)
    assert background.scales_km == ()  # 15-degree cells: no scale band below 500 km
    assert background.field.shape == (3, 4, 12, 24) and background.slope.shape == (1, 4, 12)
    expected = torch.from_numpy(np.broadcast_to(SLOPES[None, :, None], (1, 4, 12)).copy()).float()
    torch.testing.assert_close(background.slope, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(_at(background, field, sst), field.values, atol=1e-3)
    assert background.covered.all()


def test_held_out_cells_are_filled_from_their_surroundings_and_follow_the_sst():
    field, sst = _seasonal_temperature()
    hole = (slice(4, 7), slice(8, 12))
    held = field.copy()
    held[:, :, hole[0], hole[1]] = np.nan
    out = _at(SeasonalBackground.fit(held, sst), field, sst)
    assert np.isfinite(out).all()
    truth = field.values[:, :, hole[0], hole[1]]
    error = np.abs(out[:, :, hole[0], hole[1]] - truth).mean()
    naive = np.abs(truth - field.values.mean(axis=(2, 3), keepdims=True)).mean()  # each level's mean instead
    assert error < 0.1 * naive  # smooth fields: the interpolated cycle plus the SST term is close


def test_cells_below_the_bottom_take_the_value_of_the_level_above():
    field, sst = _seasonal_temperature()
    shallow = field.copy()
    shallow[:, 3, 5, 6] = np.nan  # the bottom between levels 2 and 3
    shallow[:, 1:, 8, 20] = np.nan  # a shelf: only the surface level
    background = SeasonalBackground.fit(shallow, sst)
    stored = background.field.numpy()
    np.testing.assert_array_equal(stored[:, 3, 5, 6], stored[:, 2, 5, 6])
    for level in (1, 2, 3):
        np.testing.assert_array_equal(stored[:, level, 8, 20], stored[:, 0, 8, 20])
    # a horizontal fill from the level's own neighbours would give their much colder deep water
    neighbours = field.values[:, 3, 4:7, 5:8].mean()
    assert abs(stored[0, 3, 5, 6] - neighbours) > 1.0
    np.testing.assert_allclose(stored[:, :3, 5, 6], SeasonalBackground.fit(field, sst).field.numpy()[:, :3, 5, 6],
                               atol=1e-4)  # the levels above the bottom keep their own fit
    assert background.covered[5, 6] and background.covered[8, 20]  # cut columns are covered


def test_another_grid_takes_the_nearest_stored_cell_across_the_dateline():
    stored = np.array([-179.5, -90.5, 0.5, 90.5])
    index = _nearest(stored, np.array([179.9, -179.0, 170.0, 1.0, 45.0]), periodic=True)
    np.testing.assert_array_equal(index, [0, 0, 0, 2, 2])
    np.testing.assert_array_equal(_nearest(np.array([0.0, 1.0, 2.0]), np.array([-5.0, 0.6, 9.0]), periodic=False),
                                  [0, 1, 2])


def test_evaluated_on_another_grid_each_cell_takes_the_nearest_stored_cell():
    field, sst = _seasonal_temperature()
    background = SeasonalBackground.fit(field, sst)
    rows, cols = [2, 7], [0, 23, 11]
    latitude, longitude = field.latitude.values[rows] + 0.4, field.longitude.values[cols] - 0.4
    wanted = sst.values[:, rows][..., cols]
    sub = background.at(field.time.values, latitude, longitude, wanted).numpy()
    np.testing.assert_allclose(sub, _at(background, field, sst)[:, :, rows][..., cols], rtol=1e-6)


def test_cross_validated_backgrounds_are_out_of_sample():
    field, sst = _seasonal_temperature(seed=1)
    noisy = field + 0.3 * np.random.default_rng(2).normal(size=field.shape)  # what no fit can predict
    fitted = _at(SeasonalBackground.fit(noisy, sst), field, sst)
    crossed = cross_validated_background(noisy, sst, block=60.0, folds=3, seed=0)
    assert crossed.dims == ("time", "channel", "latitude", "longitude") and crossed.dtype == np.float32
    assert np.isfinite(crossed.values).all()
    in_sample = np.sqrt(np.mean((fitted - noisy.values) ** 2))
    out_of_sample = np.sqrt(np.mean((crossed.values - noisy.values) ** 2))
    assert out_of_sample > 1.1 * in_sample
    again = cross_validated_background(noisy, sst, block=60.0, folds=3, seed=0)
    xr.testing.assert_identical(again, crossed)  # seeded
    by_time = cross_validated_background(noisy, sst, folds=3, seed=0, over="time")
    assert np.isfinite(by_time.values).all()
    assert np.sqrt(np.mean((by_time.values - noisy.values) ** 2)) > 1.1 * in_sample  # each month fitted without it
    with pytest.raises(ValueError, match="folds must be at least 2"):
        cross_validated_background(noisy, sst, folds=1)
    with pytest.raises(ValueError, match="over='depth' is not 'space' or 'time'"):
        cross_validated_background(noisy, sst, over="depth")
    with pytest.raises(TypeError):
        cross_validated_background(noisy, sst, 1, 10.0)  # the options are keyword-only


def test_the_background_knows_which_cells_the_training_data_covered():
    field, sst = _seasonal_temperature()
    kept = (field.longitude < 0) | (field.latitude > 20)
    background = SeasonalBackground.fit(field.where(kept), sst)  # a block with no training data
    covered = background.covered_at(field.latitude.values, field.longitude.values).numpy()
    np.testing.assert_array_equal(covered, kept.transpose("latitude", "longitude").values)
    with pytest.raises(ValueError, match="holds no finite value"):
        SeasonalBackground.fit(field.where(field < -100), sst)


def test_the_background_survives_save_and_load_within_an_analysis(tmp_path):
    field, sst = _seasonal_temperature()
    background = SeasonalBackground.fit(field.where(field.longitude < 90), sst, band=20.0)
    analysis = Analysis(background, DepartureAnalysis(4))
    loaded = xdepthrecon.load(analysis.save(tmp_path / "analysis.safetensors"))
    assert isinstance(loaded.background, SeasonalBackground) and loaded.background.config == background.config
    args = (field.time.values, field.latitude.values, field.longitude.values, sst.values)
    torch.testing.assert_close(loaded.background_at(*args), analysis.background_at(*args), rtol=0, atol=0)
    torch.testing.assert_close(loaded.background.covered, background.covered, rtol=0, atol=0)


def _scale_dependent(times: int = 60, cells: int = 32, seed: int = 3) -> tuple[xr.DataArray, xr.DataArray]:
    """Two levels on a 0.25-degree grid: the surface follows the whole SST anomaly, the level below only its
    broad part (an anomaly smoothed over about 100 km); a seasonal cycle on top."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2021-01-03", periods=times, freq="7D")
    lat, lon = 30.0 + 0.25 * np.arange(cells), -60.0 + 0.25 * np.arange(cells)
    fine = rng.normal(size=(times, cells, cells))
    kernel = np.exp(-0.5 * (np.arange(-12, 13) / 4.0) ** 2)
    broad = rng.normal(size=(times, cells + 24, cells + 24))
    broad = np.apply_along_axis(np.convolve, 1, broad, kernel, "valid")
    broad = np.apply_along_axis(np.convolve, 2, broad, kernel, "valid")
    broad *= 1.0 / broad.std()
    phase = 2 * np.pi * np.asarray(time.day_of_year) / 365.25
    cycle = 3.0 * np.cos(phase)[:, None, None]
    sst = 20.0 + cycle + broad + fine
    temperature = np.stack([20.0 + cycle + broad + fine, 12.0 + 0.3 * cycle + broad], axis=1)
    coords = {"time": time, "latitude": lat, "longitude": lon}
    field = xr.DataArray(temperature, dims=("time", "channel", "latitude", "longitude"), coords=coords)
    return field, xr.DataArray(sst, dims=("time", "latitude", "longitude"), coords=coords)


def test_each_scale_of_the_sst_anomaly_reaches_down_with_its_own_slope():
    field, sst = _scale_dependent()
    train, test = slice(0, 45), slice(45, None)
    banded = SeasonalBackground.fit(field.isel(time=train), sst.isel(time=train), largest_scale_km=400.0)
    single = SeasonalBackground.fit(field.isel(time=train), sst.isel(time=train), largest_scale_km=None)
    assert len(banded.scales_km) == 4 and single.scales_km == () and single.slope.shape == (1, 2, 32)
    assert torch.isfinite(banded.ridge[1])  # the data tell its bands apart: cross-validation keeps them
    slope = banded.slope[:, 1, 16].numpy()
    assert slope[0] < 0.1 and slope[-1] > 0.8  # the cell-scale noise stays at the surface, the broad part reaches down
    truth = field.isel(time=test).values
    errors = {name: np.sqrt(np.mean((_at(model, field.isel(time=test), sst.isel(time=test)) - truth) ** 2,
                                    axis=(0, 2, 3)))
              for name, model in (("banded", banded), ("single", single))}
    assert errors["banded"][1] < 0.5 * errors["single"][1]  # the level below: no cell-scale noise carried down
    assert errors["banded"][0] < 1.05 * errors["single"][0]  # the surface follows every scale either way


def test_one_slope_for_all_scales_where_the_data_cannot_tell_them_apart():
    field, sst = _scale_dependent(times=5)  # too few times to hold any out
    background = SeasonalBackground.fit(field, sst)
    assert np.isinf(background.ridge.numpy()).all()
    slope = background.slope.numpy()
    np.testing.assert_allclose(slope, np.broadcast_to(slope[:1], slope.shape))
    with pytest.raises(ValueError, match="one ridge and one seasonal flag per channel"):
        SeasonalBackground.fit(field, sst, choice=SlopeChoice([1.0], [False]))


def test_a_background_saved_before_the_scale_bands_loads_as_one_band():
    field, sst = _seasonal_temperature()
    fitted = SeasonalBackground.fit(field, sst)
    state = {name: value for name, value in fitted.state_dict().items() if name != "ridge"}
    state["slope"] = state["slope"][0]  # the old layout: (channel, latitude)
    old = SeasonalBackground(**{k: v for k, v in fitted.config.items() if k != "scales_km"})
    old.load_state_dict(state)
    torch.testing.assert_close(_at(old, field, sst), _at(fitted, field, sst))
    assert np.isinf(old.ridge.numpy()).all()


def test_an_infinite_ridge_is_one_slope_and_the_cross_validated_folds_share_the_ridges():
    field, sst = _scale_dependent(times=24)
    single = SeasonalBackground.fit(field, sst, largest_scale_km=None)
    common = SeasonalBackground.fit(field, sst, choice=SlopeChoice([np.inf] * 2, [False] * 2))
    assert len(common.scales_km) > 0
    torch.testing.assert_close(_at(common, field, sst), _at(single, field, sst), atol=1e-4, rtol=0)
    crossed = cross_validated_background(field, sst, choice=SlopeChoice([np.inf] * 2, [False] * 2), over="time",
                                         folds=3)
    one_slope = cross_validated_background(field, sst, largest_scale_km=None, over="time", folds=3)
    np.testing.assert_allclose(crossed.values, one_slope.values, atol=1e-4)
