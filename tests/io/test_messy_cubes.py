"""Messy real-world cubes: undated fields and variables that are not temperature (issue 15, items 2 and 4)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xdepthrecon
from xdepthrecon import CANONICAL_DIMS
from xdepthrecon.io.cube import is_undated

from tests.conftest import glorys_like

# --- a cube without a time axis: undated ---------------------------------------------------------------


def _undated_chain(cube: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    profiles = xdepthrecon.sample_profiles(cube, per_tile=4000, seed=1)
    gridded = xdepthrecon.grid_profiles(profiles, like=cube, window="1D")
    scores = xdepthrecon.evaluate(gridded.x, cube, mask=gridded.x_mask, resolution=False)
    return profiles, gridded, scores


def test_timeless_synthetic_cube_goes_through_sample_grid_evaluate():
    cube = xdepthrecon.standardize(glorys_like(times=1, lats=16, lons=32).isel(time=0, drop=True))
    assert is_undated(cube) and cube.thetao.dims == CANONICAL_DIMS
    profiles, gridded, scores = _undated_chain(cube)
    assert profiles.sizes["profile"] > 10 and np.all(np.isnat(profiles.time.values))
    assert gridded.attrs["profiles_used"] == profiles.sizes["profile"]
    assert "undated" in gridded.attrs["time_matching"] and is_undated(gridded)
    assert gridded.x.dims == CANONICAL_DIMS
    observed = gridded.x_mask.values
    np.testing.assert_array_equal(gridded.x.values[observed], cube.thetao.values[observed])
    assert int(observed.sum()) == int(scores.points.sum()) > 0
    np.testing.assert_allclose(scores.rmse.dropna("depth").values, 0.0, atol=1e-6)


def test_atlas_snapshot_without_time_goes_through_sample_grid_evaluate():
    snapshot = xdepthrecon.open_sample("ocean_atlas").isel(time=0, drop=True)
    cube = xdepthrecon.standardize(snapshot)
    assert is_undated(cube)
    _, gridded, scores = _undated_chain(cube)
    np.testing.assert_array_equal(gridded.x.values[gridded.x_mask.values], cube.thetao.values[gridded.x_mask.values])
    np.testing.assert_allclose(scores.rmse.dropna("depth").values, 0.0, atol=1e-6)


def test_a_scalar_time_is_kept_as_a_date_not_undated(cube):
    out = xdepthrecon.standardize(cube.isel(time=1))
    assert not is_undated(out) and out.time.values[0] == cube.time.values[1]


def test_several_time_steps_without_a_time_coordinate_are_refused(cube):
    undated = cube.drop_vars("time")
    with pytest.raises(ValueError, match="no time coordinate.*assign_coords"):
        xdepthrecon.sample_profiles(undated, per_tile=10)
    profiles = xdepthrecon.sample_profiles(cube, per_tile=100)
    with pytest.raises(ValueError, match="no 1-D time coordinate.*undated"):
        xdepthrecon.grid_profiles(profiles, like=undated)


def test_undated_profiles_on_a_dated_cube_are_counted_not_placed(cube):
    undated = xdepthrecon.standardize(cube.isel(time=0, drop=True))
    profiles = xdepthrecon.sample_profiles(undated, per_tile=400)
    with pytest.warns(UserWarning, match="in no cube time's window"):
        gridded = xdepthrecon.grid_profiles(profiles, like=cube)
    assert gridded.attrs["profiles_outside_time"] == profiles.sizes["profile"] and not gridded.x_mask.any()
