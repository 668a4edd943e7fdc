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


# --- variables that are not temperature ----------------------------------------------------------------


def _field(cube: xr.Dataset, value: float, **attrs) -> xr.DataArray:
    da = xr.full_like(cube.thetao, value).where(cube.thetao.notnull())
    da.attrs = attrs
    return da


@pytest.mark.parametrize(
    ("name", "value", "attrs", "quantity"),
    [
        ("so", 35.0, {}, "salinity \\(name 'so'\\)"),
        ("salinity", 35.0, {}, "salinity"),
        ("PSAL", 35.0, {}, "salinity"),
        ("x", 35.0, {"standard_name": "sea_water_practical_salinity"}, "salinity \\(standard_name"),
        ("x", 35.0, {"units": "PSU"}, "salinity \\(units 'psu'\\)"),
        ("x", 35.0, {"units": "g/kg"}, "salinity"),
        ("x", 35.0, {"units": "1e-3"}, "salinity"),
        ("rho", 1025.0, {}, "density"),
        ("x", 1025.0, {"units": "kg m-3"}, "density"),
        ("sigma_theta", 27.0, {}, "density"),
        ("x", 27.0, {"standard_name": "sea_water_sigma_theta"}, "density"),
        ("uo", 0.1, {}, "velocity"),
        ("x", 0.1, {"units": "m/s"}, "velocity"),
        ("x", 0.1, {"standard_name": "eastward_sea_water_velocity"}, "velocity"),
    ],
)
def test_a_lone_variable_that_is_not_temperature_is_refused_with_what_was_found(cube, name, value, attrs, quantity):
    ds = _field(cube, value, **attrs).to_dataset(name=name)
    with pytest.raises(ValueError, match=f"only temperature candidate '{name}' is {quantity}") as error:
        xdepthrecon.standardize(ds)
    message = str(error.value)
    assert f"Variables found: {name}(" in message and f"range {value:.4g} .. {value:.4g}" in message
    assert "temperature='NAME'" in message
    for key, given in attrs.items():
        assert f"{key}={given!r}" in message


def test_a_salinity_dataarray_and_a_salinity_surface_field_are_refused(cube):
    with pytest.raises(ValueError, match="'so' is salinity"):
        xdepthrecon.standardize(_field(cube, 35.0).rename("so"))
    with pytest.raises(ValueError, match="'sos' is salinity.*variable='NAME'"):
        xdepthrecon.standardize_surface(_field(cube, 35.0).isel(depth=0, drop=True).rename("sos"))


def test_salinity_values_without_units_or_names_are_refused_unless_said_to_be_degc(cube):
    ds = _field(cube, 35.0).to_dataset(name="var1")
    with pytest.raises(ValueError, match="no units.*range 35 .. 35.*salinity.*units='degC'"):
        xdepthrecon.standardize(ds)
    assert float(xdepthrecon.standardize(ds, units="degC").thetao.mean()) == pytest.approx(35.0)


def test_temperature_beside_salinity_is_chosen_and_salinity_named_explicitly_is_refused(cube):
    ds = xr.Dataset({"thetao": cube.thetao, "so": _field(cube, 35.0, units="1e-3")})
    xr.testing.assert_identical(xdepthrecon.standardize(ds).thetao, xdepthrecon.standardize(cube).thetao)
    with pytest.raises(ValueError, match="units '1e-3' of 'so' are not understood, they say salinity.*Variables found: "
                                         "thetao.*so.*units='1e-3'"):
        xdepthrecon.standardize(ds, temperature="so")


@pytest.mark.parametrize("units", ["degC", "K"])
def test_values_outside_the_sea_temperature_range_are_refused_whatever_the_units(cube, units):
    density = _field(cube, 1025.0 + (273.15 if units == "K" else 0.0), units=units).to_dataset(name="temp")
    with pytest.raises(ValueError, match=f"'temp' is not sea temperature: in '{units}'.*1025 .. 1025 degC.*-3 .. 40"):
        xdepthrecon.standardize(density)


def test_an_undecoded_fill_value_is_refused(cube):
    raw = cube.copy()
    raw["thetao"] = cube.thetao.fillna(-32767.0)
    with pytest.raises(ValueError, match="not sea temperature.*-3.277e\\+04.*fill values"):
        xdepthrecon.standardize(raw)


def test_real_salinity_beside_temperature_is_refused_alone_and_skipped_otherwise(shared_data):
    raw = xr.open_dataset(shared_data / "atlantic_profiles.nc")
    assert xdepthrecon.standardize(raw).thetao.attrs["standard_name"] == "sea_water_potential_temperature"
    with pytest.raises(ValueError, match="'salinity' is salinity \\(standard_name 'sea_water_practical_salinity'\\)"):
        xdepthrecon.standardize(raw[["salinity"]])


def test_real_files_still_standardise(shared_data):
    atlas = xdepthrecon.standardize(xr.open_dataset(shared_data / "ocean_atlas_subset.nc", decode_times=False))
    assert atlas.sizes == {"time": 12, "depth": 19, "latitude": 90, "longitude": 180}
    coads = xdepthrecon.standardize_surface(xr.open_dataset(shared_data / "coads_climatology.cdf", decode_times=False))
    assert coads.sst.sizes == {"time": 12, "latitude": 90, "longitude": 180}
    ostia = xdepthrecon.standardize_surface(xr.open_dataset(shared_data / "ostia_monthly.nc"))
    assert ostia.sst.sizes == {"time": 54, "latitude": 18, "longitude": 432}
    with xr.open_dataset(shared_data / "qg_nature_run.nc", chunks={"time": 1}) as nature:
        cube = xdepthrecon.standardize(nature.isel(time=slice(0, 3)))
        sst = xdepthrecon.standardize_surface(nature.isel(time=slice(0, 3)))
        assert cube.sizes == {"time": 3, "depth": 16, "latitude": 64, "longitude": 64}
        np.testing.assert_allclose(sst.sst.values, cube.thetao.isel(depth=0).values, atol=1e-5)
