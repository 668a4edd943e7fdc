"""align_sst: Kelvin or degC, any grid, NaN land respected, nearest time within a tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdepthrecon

from tests.conftest import glorys_like


def _sst_on_coarser_grid(cube: xr.Dataset, kelvin: bool = True) -> xr.Dataset:
    """A smooth analytic SST on a 0..360, 1-degree grid, daily, in Kelvin."""
    lat = np.arange(-89.5, 90, 1.0)
    lon = np.arange(0.5, 360, 1.0)
    times = pd.date_range("2019-12-30", periods=6, freq="D")
    values = 20 + 5 * np.cos(np.deg2rad(lat))[None, :, None] + np.sin(np.deg2rad(lon))[None, None, :] \
        + np.arange(6)[:, None, None]
    values = values + (273.15 if kelvin else 0.0)
    field = xr.DataArray(values.astype("float32"), dims=("time", "lat", "lon"),
                         coords={"time": times, "lat": lat, "lon": lon},
                         attrs={"units": "K" if kelvin else "degC", "standard_name": "sea_surface_temperature"})
    return field.to_dataset(name="analysed_sst")


def _expected(cube: xr.Dataset, day_offset: np.ndarray) -> np.ndarray:
    lat = cube.latitude.values[:, None]
    lon = cube.longitude.values[None, :]
    return (20 + 5 * np.cos(np.deg2rad(lat)) + np.sin(np.deg2rad(lon)))[None] + day_offset[:, None, None]


def test_kelvin_0_360_grid_is_interpolated_to_the_cube(cube):
    aligned = xdepthrecon.align_sst(_sst_on_coarser_grid(cube), cube)
    assert aligned.sst.dims == ("time", "latitude", "longitude") and aligned.sst.attrs["units"] == "degC"
    np.testing.assert_allclose(aligned.sst.values, _expected(cube, np.array([2.0, 3.0])), atol=0.01)
    assert aligned.attrs["coverage"] == 1.0


def test_land_does_not_leak_and_coasts_take_the_ocean_neighbours(cube):
    sst = _sst_on_coarser_grid(cube, kelvin=False)
    land = (sst.lon > 100) & (sst.lon < 200)
    sst["analysed_sst"] = sst.analysed_sst.where(~land)
    aligned = xdepthrecon.align_sst(sst, cube).sst
    values = aligned.isel(time=0).values
    finite = np.isfinite(values)
    np.testing.assert_allclose(values[finite], _expected(cube, np.array([2.0]))[0][finite], atol=0.02)
    deep_land = ((cube.longitude > 101.5) & (cube.longitude < 180)) | (cube.longitude < -160.5)
    assert not np.isfinite(values[:, deep_land.values]).any()


def test_nearest_time_and_tolerance(cube):
    sst = _sst_on_coarser_grid(cube).isel(time=[0, 5])  # 2019-12-30 and 2020-01-04
    with pytest.raises(ValueError, match=r"have no SST within .*tolerance="):
        xdepthrecon.align_sst(sst, cube, tolerance="1D")
    aligned = xdepthrecon.align_sst(sst, cube, tolerance="3D")
    np.testing.assert_allclose(aligned.sst.values, _expected(cube, np.array([0.0, 5.0])), atol=0.01)
    np.testing.assert_array_equal(aligned.time.values, cube.time.values)


def test_no_spatial_overlap_is_refused(cube):
    sst = _sst_on_coarser_grid(cube).sel(lat=slice(70, 89))
    with pytest.raises(ValueError, match="do not overlap the target grid"):
        xdepthrecon.align_sst(sst, cube)


def test_real_coads_on_the_atlas_matches_its_surface():
    atlas = xdepthrecon.open_sample("ocean_atlas")
    coads = xdepthrecon.open_sample("coads_sst")
    aligned = xdepthrecon.align_sst(coads, atlas)
    difference = (aligned.sst - atlas.thetao.isel(depth=0)).isel(time=0)
    rmse = float(np.sqrt((difference**2).mean()))
    assert 0.3 < rmse < 1.0  # independent climatologies: the shared README quotes ~0.7 degC in January
    assert 0.5 < aligned.attrs["coverage"] < 0.7


def test_real_ostia_kelvin_on_a_tropical_cube(shared_data):
    ostia = xr.open_dataset(shared_data / "ostia_monthly.nc")
    cube = glorys_like(times=1, lats=5, lons=12).assign_coords(
        latitude=np.linspace(-4, 4, 5), time=[np.datetime64("2008-07-10")])
    aligned = xdepthrecon.align_sst(ostia, cube)
    source = ostia.surface_temperature.sel(time="2008-07").squeeze() - 273.15
    expected = source.sel(latitude=0, longitude=(cube.longitude.values % 360), method="nearest")
    np.testing.assert_allclose(aligned.sst.sel(latitude=0).values[0], expected.values, atol=0.6)
