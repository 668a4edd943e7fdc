"""Baselines: interpolation, climatology, SST regression and optimal interpolation on synthetic fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.conftest import glorys_like
from xdepthrecon.baselines._inputs import cell_vectors
from xdepthrecon.baselines.climatology import climatology
from xdepthrecon.baselines.interpolation import interpolate
from xdepthrecon.baselines.optimal_interpolation import optimal_interpolation
from xdepthrecon.baselines.sst_regression import sst_regression
from xdepthrecon.stats.covariance import Covariance
from xdepthrecon.stats.geometry import EARTH_RADIUS_KM
from xdepthrecon.sampling import sample_profiles

DIMS = ("time", "depth", "latitude", "longitude")


def _gridded(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, times: int) -> xr.Dataset:
    return xr.Dataset(
        {"x": (DIMS, values)},
        coords={"time": pd.date_range("2020-01-01", periods=times, freq="MS"), "depth": [0.0],
                "latitude": lat, "longitude": lon},
    )


@pytest.fixture(scope="module")
def gp_fields():
    """Six independent draws of a Matern-3/2 GP (length 1000 km, std 1.5) on a 6-degree grid, 25 % observed."""
    lat, lon = np.arange(-60.0, 61.0, 6.0), np.arange(-177.0, 180.0, 6.0)
    vectors = cell_vectors(xr.Dataset(coords={"latitude": lat, "longitude": lon}))
    distance = EARTH_RADIUS_KM * np.sqrt(np.clip(2.0 - 2.0 * vectors @ vectors.T, 0.0, None))
    signal = Covariance("matern32", 1000.0, 1.5**2, 0.0).signal(distance)
    factor = np.linalg.cholesky(signal + 1e-8 * np.eye(len(vectors)))
    rng = np.random.default_rng(0)
    truth = (factor @ rng.standard_normal((len(vectors), 6))).T.reshape(6, 1, lat.size, lon.size) + 10.0
    observed = rng.random(truth.shape) < 0.25
    x = np.where(observed, truth + 0.05 * rng.standard_normal(truth.shape), np.nan)
    return truth, observed, _gridded(x, lat, lon, 6)


def test_oi_recovers_gp_length_scale_and_beats_nearest(gp_fields):
    truth, observed, gridded = gp_fields
    analysis = optimal_interpolation(gridded)
    assert analysis.length_scale.item() == pytest.approx(1000.0, rel=0.2)
    assert analysis.signal_std.item() == pytest.approx(1.5, rel=0.2)
    nearest = interpolate(gridded, method="nearest")

    def rmse(ds: xr.Dataset) -> float:
        return float(np.sqrt(np.mean((ds.thetao.values - truth)[~observed] ** 2)))

    assert rmse(analysis) < 0.85 * rmse(nearest)
    z = ((analysis.thetao.values - truth) / analysis.thetao_std.values)[~observed]
    assert np.std(z) == pytest.approx(1.0, abs=0.15)  # the posterior std is calibrated


def test_oi_std_tends_to_prior_far_from_observations(gp_fields):
    truth, observed, gridded = gp_fields
    lon = gridded.longitude.values
    only_west = gridded.where(gridded.longitude < -90.0)
    analysis = optimal_interpolation(only_west, local_variance=False)
    prior = np.hypot(analysis.signal_std.item(), analysis.noise_std.item())
    std = analysis.thetao_std.isel(depth=0).values
    far = (lon > 60.0) & (lon < 120.0)
    np.testing.assert_allclose(std[:, :, far], prior, rtol=1e-3)
    seen = np.isfinite(only_west.x.isel(depth=0).values)
    assert np.all(std[seen] < 0.5 * prior)
    near = optimal_interpolation(only_west)  # local variance: same mean, std scaled per tile
    np.testing.assert_allclose(near.thetao.values, analysis.thetao.values, rtol=1e-6)


@pytest.mark.parametrize("method", ["linear", "nearest", "inverse_distance"])
def test_interpolation_exact_at_observed_cells_and_nan_on_land(cube, method):
    profiles = sample_profiles(cube, per_tile=3000, seed=1)
    result = interpolate(profiles, grid=cube, method=method, window="1D")
    from xdepthrecon import grid_profiles

    observed = grid_profiles(profiles, like=cube, window="1D").x_mask.values
    np.testing.assert_allclose(result.thetao.values[observed], cube.thetao.values[observed], rtol=1e-6)
    land = cube.thetao.isnull().values
    assert np.isnan(result.thetao.values[land]).all()
    levels_with_data = observed.any(axis=(2, 3))
    ocean = ~land & levels_with_data[:, :, None, None]
    assert np.isfinite(result.thetao.values[ocean]).all()
    assert result.thetao.attrs["units"] == "degC"


def test_interpolation_wraps_longitude():
    lat, lon = np.array([0.0]), np.arange(-179.0, 180.0, 2.0)
    values = np.full((1, 1, 1, lon.size), np.nan)
    values[0, 0, 0, 0], values[0, 0, 0, 100] = 1.0, 2.0  # at -179 and 21 degrees east
    for method in ("nearest", "inverse_distance"):
        out = interpolate(_gridded(values, lat, lon, 1), method=method).thetao.values[0, 0, 0]
        assert out[-1] == pytest.approx(1.0, abs=0.05)  # 179 E is 2 degrees from 179 W


def test_interpolation_rejects_unknown_method(cube):
    with pytest.raises(ValueError, match="method="):
        interpolate(sample_profiles(cube, per_tile=3000, seed=0), grid=cube, method="cubic")


def _seasonal_cube(times: int = 12, seed: int = 0) -> xr.Dataset:
    cube = glorys_like(times=times, seed=seed)
    cube = cube.assign_coords(time=pd.date_range("2020-01-15", periods=times, freq="MS") + pd.Timedelta(days=14))
    phase = 2 * np.pi * ((cube.time.dt.dayofyear - 1) / 366.0)
    rng = np.random.default_rng(seed)
    amplitude = xr.DataArray(rng.uniform(0.5, 2.0, cube.thetao.shape[1:]), dims=DIMS[1:])
    mean = cube.thetao.isel(time=0)
    return cube.assign(thetao=(mean + amplitude * np.cos(phase) - 0.3 * np.sin(phase)).transpose(*DIMS))


def test_climatology_predicts_held_out_months_and_fills_held_out_region():
    cube = _seasonal_cube()
    held_out_months = cube.time.dt.month.isin([3, 7, 11])
    region = (cube.latitude > 0) & (cube.longitude > 0) & (cube.longitude < 60)
    training = cube.where(~held_out_months & ~region)
    result = climatology(grid=cube, training=training)
    outside = (~region).broadcast_like(cube.thetao).values & cube.thetao.notnull().values
    np.testing.assert_allclose(result.thetao.values[outside], cube.thetao.values[outside], atol=1e-4)
    ocean = cube.thetao.notnull().values
    assert np.isfinite(result.thetao.values[ocean]).all()
    assert np.isnan(result.thetao.values[~ocean]).all()
    annual = climatology(grid=cube, training=training, harmonics=0)
    expected = training.thetao.mean("time").values
    kept = np.isfinite(expected)
    np.testing.assert_allclose(annual.thetao.isel(time=0).values[kept], expected[kept], atol=1e-4)


def test_climatology_needs_training(cube):
    with pytest.raises(ValueError, match="training="):
        climatology(grid=cube)


def test_sst_regression_recovers_the_projection():
    cube = _seasonal_cube(seed=2)
    rng = np.random.default_rng(3)
    surface = xr.DataArray(rng.normal(0.0, 1.0, (12, cube.sizes["latitude"], cube.sizes["longitude"])),
                           dims=("time", "latitude", "longitude"), coords={d: cube[d] for d in DIMS if d != "depth"})
    beta = xr.DataArray(np.exp(-cube.depth.values / 100.0), dims="depth", coords={"depth": cube.depth})
    truth = cube.assign(thetao=(cube.thetao + beta * surface).transpose(*DIMS))
    sst = (cube.thetao.isel(depth=0, drop=True) + surface).rename("sst").to_dataset()
    training = truth.where(~truth.time.dt.month.isin([4, 9]))
    result = sst_regression(None, sst, grid=truth, training=training, analysis=False, band=180.0)
    np.testing.assert_allclose(result.sst_coefficient.isel(latitude=0).values, beta.values, atol=1e-6)
    ocean = truth.thetao.notnull().values
    np.testing.assert_allclose(result.thetao.values[ocean], truth.thetao.values[ocean], atol=1e-4)
    assert "thetao_std" not in result


def test_sst_regression_with_analysis_has_posterior_std():
    cube = _seasonal_cube(seed=4)
    sst = cube.thetao.isel(depth=0, drop=True).rename("sst").to_dataset()
    profiles = sample_profiles(cube, per_tile=4000, seed=0)
    result = sst_regression(profiles, sst, grid=cube, training=cube.where(cube.time.dt.month != 6), window="1D")
    ocean = cube.thetao.notnull().values
    assert np.isfinite(result.thetao_std.values[ocean]).all()
    assert {"length_scale", "signal_std", "noise_std", "sst_coefficient"} <= set(result.data_vars)


def test_sst_regression_under_clouds_analyses_them_about_the_climatology_from_every_profile():
    cube = _seasonal_cube(seed=4)
    times, _, lats, lons = cube.thetao.shape
    anomaly = xr.DataArray(np.random.default_rng(5).normal(0.0, 0.5, (times, lats, lons)),
                           dims=("time", "latitude", "longitude"))  # the whole column's, fading with depth
    cube = cube.assign(thetao=(cube.thetao + anomaly * np.exp(-cube.depth / 200.0)).transpose(*DIMS))
    sst = cube.thetao.isel(depth=0, drop=True).rename("sst").to_dataset()
    cloud = (cube.longitude > 0).broadcast_like(sst.sst)
    profiles = sample_profiles(cube, per_tile=4000, seed=0)
    training = cube.where(cube.time.dt.month != 6)
    result = sst_regression(profiles, sst.where(~cloud), grid=cube, training=training, window="1D")
    plain = optimal_interpolation(profiles, grid=cube, training=training, window="1D")
    ocean = cube.thetao.notnull()
    under, seen = (ocean & cloud).values, (ocean & ~cloud).values
    for name in ("thetao", "thetao_std"):  # under the cloud: the OI baseline about the climatology
        np.testing.assert_allclose(result[name].values[under], plain[name].values[under], rtol=1e-5, atol=1e-5)
    clear_profiles = profiles.isel(profile=np.flatnonzero(profiles.longitude.values <= 0))
    alone = sst_regression(clear_profiles, sst.where(~cloud), grid=cube, training=training, window="1D")
    for name in ("thetao", "thetao_std"):  # the profiles under the cloud take no part where the SST is seen
        np.testing.assert_allclose(result[name].values[seen], alone[name].values[seen], rtol=1e-5, atol=1e-5)


def test_oi_without_training_uses_the_observations_mean(cube):
    profiles = sample_profiles(cube, per_tile=4000, seed=2)
    result = optimal_interpolation(profiles, grid=cube, window="1D")
    ocean = cube.thetao.notnull().values
    assert np.isfinite(result.thetao.values[ocean]).all()
    assert np.isnan(result.thetao_std.values[~ocean]).all()
    assert (result.thetao_std.values[ocean] > 0).all()
    assert "optimal_interpolation" in result.attrs["history"]
