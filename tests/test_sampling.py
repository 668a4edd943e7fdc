"""sample_profiles: seeded, density honoured, canonical, and an exact round trip through grid_profiles."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xdepthrecon
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.io.times import as_profile_times
from xdepthrecon.io.profiles import is_canonical, read_profiles
from xdepthrecon.sampling import _cell_areas, sample_profiles

from tests.conftest import glorys_like


def _assert_round_trip(truth: xr.Dataset, obs: xr.Dataset, depth_max: float | None) -> None:
    """Gridding the samples back gives the truth exactly at the sampled columns, and nothing elsewhere."""
    gridded = grid_profiles(obs, like=truth, window="1h")
    expected = np.zeros(truth.thetao.shape, dtype=bool)
    times, _ = as_profile_times(truth.time.values)
    for p in range(obs.sizes["profile"]):
        t = int(np.flatnonzero(times == obs.time.values[p])[0])
        i = int(np.flatnonzero(truth.latitude.values == obs.latitude.values[p])[0])
        j = int(np.flatnonzero(truth.longitude.values == obs.longitude.values[p])[0])
        column = truth.thetao.values[t, :, i, j].copy()
        if depth_max is not None:
            column[truth.depth.values > depth_max] = np.nan
        np.testing.assert_array_equal(gridded.x.values[t, :, i, j], column)
        expected[t, :, i, j] = np.isfinite(column)
    np.testing.assert_array_equal(gridded.x_mask.values, expected)
    assert gridded.attrs["profiles_used"] == obs.sizes["profile"]


@settings(max_examples=25, deadline=None)
@given(
    times=st.integers(1, 3), depths=st.integers(1, 6), lats=st.integers(1, 7), lons=st.integers(1, 9),
    seed=st.integers(0, 2**16), depth_max=st.one_of(st.none(), st.floats(0.0, 1200.0)),
    lon_start=st.sampled_from([-180.0, -170.0, 0.0]),
)
def test_round_trip_through_grid_profiles_is_exact(times, depths, lats, lons, seed, depth_max, lon_start):
    cube = glorys_like(times, depths, lats, lons, seed, lon_start=lon_start)
    assume(np.isfinite(cube.thetao.values).any())
    truth = xdepthrecon.standardize(cube)  # rolls the 0..360 grids
    obs = sample_profiles(truth, per_tile=4000.0, depth_max=depth_max, seed=seed)
    assert is_canonical(obs)
    _assert_round_trip(truth, obs, depth_max)


def test_same_seed_same_profiles_other_seed_other_profiles():
    truth = glorys_like(times=2, lats=20, lons=40)
    first = sample_profiles(truth, per_tile=2000, noise=0.1, seed=3)
    again = sample_profiles(truth, per_tile=2000, noise=0.1, seed=3)
    xr.testing.assert_identical(first.drop_attrs(), again.drop_attrs())
    other = sample_profiles(truth, per_tile=2000, noise=0.1, seed=4)
    assert not np.array_equal(other.latitude.values, first.latitude.values)
    from_generator = sample_profiles(truth, per_tile=2000, noise=0.1, generator=np.random.default_rng(3))
    xr.testing.assert_identical(from_generator.drop_attrs(), first.drop_attrs())


def test_per_tile_and_density_are_honoured_on_average():
    truth = glorys_like(times=40, depths=2, lats=64, lons=128, seed=1)
    ocean = np.isfinite(truth.thetao.values[:, 0]).sum(axis=(1, 2))
    obs = sample_profiles(truth, per_tile=500, seed=0)
    counts = np.bincount(np.searchsorted(truth.time.values, obs.time.values), minlength=40)
    np.testing.assert_allclose(counts.mean(), (500 * ocean / 128**2).mean(), rtol=0.02)
    assert np.all(np.abs(counts - 500 * ocean / 128**2) <= 1)  # rounded up or down, never further
    share = sample_profiles(truth, fraction=0.03, seed=0)
    counts = np.bincount(np.searchsorted(truth.time.values, share.time.values), minlength=40)
    assert np.all(np.abs(counts - 0.03 * ocean) <= 1)  # 3 % of the ocean columns at every time step
    assert "fraction=0.03" in share.attrs["history"]
    area = _cell_areas(truth.latitude.values, truth.longitude.values)
    ocean_area = np.where(np.isfinite(truth.thetao.values[:, 0]), area, 0.0).sum(axis=(1, 2))
    dense = sample_profiles(truth, density=2.0, seed=0)
    assert dense.sizes["profile"] == pytest.approx((2.0 * ocean_area / 1e6).sum(), abs=40)
    ocean_cells = np.isfinite(truth.thetao.values[:, 0])
    poleward = (np.abs(truth.latitude.values) > 40)[:, None]
    area_share = np.where(ocean_cells & poleward, area, 0.0).sum() / np.where(ocean_cells, area, 0.0).sum()
    cell_share = (ocean_cells & poleward).sum() / ocean_cells.sum()
    assert np.mean(np.abs(dense.latitude.values) > 40) == pytest.approx(area_share, abs=0.015)  # per area
    assert np.mean(np.abs(obs.latitude.values) > 40) == pytest.approx(cell_share, abs=0.015)  # per cell
    assert cell_share - area_share > 0.05
    np.testing.assert_allclose(area.sum(), 4 * np.pi * 6371.0**2 * np.sin(np.deg2rad(60 + 60 / 63)), rtol=1e-9)


def test_depth_max_truncates_and_noise_has_the_asked_spread():
    truth = glorys_like(times=2, depths=6, lats=30, lons=60)
    obs = sample_profiles(truth, per_tile=5000, depth_max=100.0, seed=0)
    assert np.nanmax(obs.depth.values) <= 100.0
    assert obs.sizes["level"] == int((truth.depth.values <= 100.0).sum())
    noisy = sample_profiles(truth, per_tile=5000, depth_max=100.0, noise=0.2, seed=0)
    error = noisy.temperature.values - obs.temperature.values
    assert np.nanstd(error) == pytest.approx(0.2, rel=0.1)
    assert noisy.attrs["osse_noise"] == 0.2 and noisy.attrs["osse_depth_max"] == 100.0


def test_sampled_profiles_survive_read_profiles_unchanged():
    obs = sample_profiles(glorys_like(), per_tile=3000, seed=0)
    again = read_profiles(obs)
    xr.testing.assert_identical(again.drop_attrs(), obs.drop_attrs())
    assert obs.temperature.dtype == np.float32


def test_zero_rate_and_bad_arguments():
    truth = glorys_like()
    empty = sample_profiles(truth, per_tile=0.0)
    assert empty.sizes["profile"] == 0
    assert grid_profiles(empty, like=truth).attrs["profiles_total"] == 0
    with pytest.raises(ValueError, match="exactly one of density"):
        sample_profiles(truth)
    with pytest.raises(ValueError, match="exactly one of density"):
        sample_profiles(truth, density=1.0, per_tile=1.0)
    with pytest.raises(ValueError, match="exactly one of density"):
        sample_profiles(truth, per_tile=1.0, fraction=0.01)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sample_profiles(truth, fraction=1.5)  # a percentage given as a fraction's number
    with pytest.raises(ValueError, match="must be >= 0"):
        sample_profiles(truth, per_tile=-1.0)
    with pytest.raises(ValueError, match="standardise it"):
        sample_profiles(truth.thetao.transpose("depth", ...), per_tile=1.0)
    with pytest.warns(UserWarning, match="sampling all of them"):
        everything = sample_profiles(truth, per_tile=1e9)
    assert everything.sizes["profile"] == int(np.isfinite(truth.thetao.values[:, 0]).sum())


def test_real_climatological_atlas_round_trip(shared_data):
    raw = xr.open_dataset(shared_data / "ocean_atlas_subset.nc", decode_times=False)
    truth = xdepthrecon.standardize(raw, units="degC").isel(time=[0, 6])
    obs = sample_profiles(truth, per_tile=300, depth_max=500.0, seed=0)
    assert obs.time.values[0] == np.datetime64("2000-01-16T06:00")
    assert obs.sizes["profile"] > 20
    _assert_round_trip(truth, obs, 500.0)
