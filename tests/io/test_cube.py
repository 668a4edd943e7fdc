"""standardize / standardize_surface on synthetic and real files, and every bad input with its message."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xdepthrecon
from xdepthrecon import CANONICAL_DIMS

from tests.conftest import glorys_like


def _ferret_like(cube: xr.Dataset) -> xr.Dataset:
    """The cube as a Ferret file would hold it: no units, odd names, 20.5..378.5-style longitudes."""
    raw = cube.roll(longitude=5, roll_coords=True)
    lon = raw.longitude.values % 360.0
    lon = np.where(lon < lon[0], lon + 360.0, lon)
    raw = raw.assign_coords(longitude=lon).rename(
        {"thetao": "TEMP", "depth": "ZAXLEVIT19", "latitude": "YAX_SUBSET", "longitude": "XAX_SUBSET", "time": "TIME"}
    )
    for name in raw.variables:
        raw[name].attrs = {}
    raw["ZAXLEVIT19"].attrs = {"units": "METERS", "positive": "down", "axis": "Z"}
    return raw


def test_canonical_cube_is_unchanged(cube):
    out = xdepthrecon.standardize(cube)
    assert out.thetao.dims == CANONICAL_DIMS
    xr.testing.assert_allclose(out.thetao.reset_coords(drop=True), cube.thetao, check_dim_order=True)
    assert out.thetao.attrs["units"] == "degC"
    assert out.thetao.attrs["standard_name"] == "sea_water_potential_temperature"
    assert out.depth.attrs["positive"] == "down"
    assert "xdepthrecon.standardize()" in out.attrs["history"]
    again = xdepthrecon.standardize(out)
    xr.testing.assert_identical(again.thetao, out.thetao)


def test_accessor_delegates_on_dataset_and_dataarray(cube):
    from_ds = cube.depthrecon.standardize()
    from_da = cube.thetao.depthrecon.standardize()
    xr.testing.assert_identical(from_ds.thetao, from_da.thetao)


def test_ferret_layout_is_found_by_names_and_rolled(cube):
    raw = _ferret_like(cube)
    assert raw.XAX_SUBSET.values[0] > 0 and raw.XAX_SUBSET.values[-1] > 360
    out = xdepthrecon.standardize(raw, units="degC")
    np.testing.assert_allclose(out.longitude.values, cube.longitude.values)
    np.testing.assert_array_equal(out.thetao.values, cube.thetao.values)
    assert out.sizes["longitude"] == cube.sizes["longitude"]


def test_zero_to_360_grid_with_cyclic_column_is_rolled_not_duplicated():
    cube = glorys_like(lons=12, lon_start=-170.0)
    lon0 = (cube.longitude.values % 360.0)
    raw = cube.assign_coords(longitude=lon0).sortby("longitude")
    cyclic = raw.isel(longitude=[0]).assign_coords(longitude=[raw.longitude.values[0] + 360.0])
    raw = xr.concat([raw, cyclic], dim="longitude")
    out = xdepthrecon.standardize(raw)
    assert out.sizes["longitude"] == 12
    assert np.all(np.diff(out.longitude.values) > 0)
    assert out.longitude.min() >= -180 and out.longitude.max() < 180
    np.testing.assert_array_equal(out.thetao.values, cube.sortby("longitude").thetao.values)


def test_kelvin_by_units_is_converted(cube):
    kelvin = cube.copy()
    kelvin["thetao"] = kelvin.thetao + np.float32(273.15)
    kelvin.thetao.attrs["units"] = "K"
    out = xdepthrecon.standardize(kelvin)
    np.testing.assert_allclose(out.thetao.values, cube.thetao.values, atol=1e-4)
    assert out.thetao.attrs["units"] == "degC"


def test_missing_units_on_kelvin_values_is_refused(cube):
    kelvin = cube.copy()
    kelvin["thetao"] = kelvin.thetao + np.float32(273.15)
    del kelvin.thetao.attrs["units"]
    with pytest.raises(ValueError, match=r"no units attribute.*look like Kelvin.*units='K'"):
        xdepthrecon.standardize(kelvin)
    out = xdepthrecon.standardize(kelvin, units="K")
    np.testing.assert_allclose(out.thetao.values, cube.thetao.values, atol=1e-4)


def test_missing_units_on_celsius_values_is_accepted(cube):
    del cube.thetao.attrs["units"]
    assert xdepthrecon.standardize(cube).thetao.attrs["units"] == "degC"


def test_unknown_units_are_refused(cube):
    cube.thetao.attrs["units"] = "degF"
    with pytest.raises(ValueError, match=r"units 'degF'.*not understood.*units='degC'"):
        xdepthrecon.standardize(cube)


def test_values_that_are_neither_celsius_nor_kelvin_are_refused(cube):
    del cube.thetao.attrs["units"]
    cube["thetao"] = cube.thetao * 1000
    with pytest.raises(ValueError, match="neither degC nor K.*scale_factor"):
        xdepthrecon.standardize(cube)


def test_missing_time_becomes_length_one_axis(cube):
    out = xdepthrecon.standardize(cube.isel(time=0, drop=True))
    assert out.thetao.dims == CANONICAL_DIMS and out.sizes["time"] == 1
    assert "time" not in out.coords


def test_scalar_time_coordinate_becomes_the_time_axis(cube):
    out = xdepthrecon.standardize(cube.isel(time=1))
    assert out.sizes["time"] == 1
    assert out.time.values[0] == cube.time.values[1]


def test_land_stays_nan_and_decreasing_axes_are_flipped(cube):
    flipped = cube.isel(depth=slice(None, None, -1), latitude=slice(None, None, -1))
    out = xdepthrecon.standardize(flipped)
    np.testing.assert_array_equal(np.isnan(out.thetao.values), np.isnan(cube.thetao.values))
    np.testing.assert_array_equal(out.depth.values, cube.depth.values)
    np.testing.assert_array_equal(out.latitude.values, cube.latitude.values)


def test_depth_positive_up_with_negative_values_is_converted(cube):
    up = cube.assign_coords(depth=-cube.depth.values)
    up.depth.attrs = {"positive": "up", "units": "m", "axis": "Z"}
    out = xdepthrecon.standardize(up)
    np.testing.assert_allclose(out.depth.values, cube.depth.values)
    np.testing.assert_array_equal(out.thetao.values, cube.thetao.values)
    assert out.depth.attrs["positive"] == "down"


def test_negative_depths_without_positive_attribute_are_converted(cube):
    up = cube.assign_coords(depth=-cube.depth.values[::-1]).isel(depth=slice(None, None, -1))
    up = up.assign_coords(depth=-cube.depth.values[::-1])
    up.depth.attrs = {"units": "m", "standard_name": "depth"}
    out = xdepthrecon.standardize(up)
    np.testing.assert_allclose(out.depth.values, cube.depth.values)


def test_dask_input_stays_lazy_and_equals_numpy(cube, count_computes):
    raw = _ferret_like(cube).chunk({"TIME": 1, "XAX_SUBSET": 4})
    raw.TEMP.attrs["units"] = "K"
    raw["TEMP"] = raw.TEMP + np.float32(273.15)
    raw.TEMP.attrs["units"] = "K"
    with count_computes() as counter:
        out = xdepthrecon.standardize(raw)
        assert counter.count == 0
    assert out.thetao.chunks is not None
    expected = xdepthrecon.standardize(raw.compute())
    xr.testing.assert_allclose(out.compute(), expected)


def test_no_temperature_lists_what_was_seen(cube):
    ds = cube.rename({"thetao": "foo"})
    ds.foo.attrs = {"units": "degC"}
    ds["bar"] = ds.foo.isel(depth=0)
    with pytest.raises(ValueError, match=r"no temperature variable found.*Seen: foo\(.*bar\(.*temperature='NAME'"):
        xdepthrecon.standardize(ds)
    assert xdepthrecon.standardize(ds, temperature="foo").thetao.dims == CANONICAL_DIMS


def test_unknown_explicit_variable_is_refused(cube):
    with pytest.raises(ValueError, match=r"temperature='nope' is not a data variable.*thetao"):
        xdepthrecon.standardize(cube, temperature="nope")


def test_ambiguous_candidates_are_refused(cube):
    cube["thetao_copy"] = cube.thetao.copy()
    with pytest.raises(ValueError, match=r"ambiguous temperature: 'thetao', 'thetao_copy'.*temperature='NAME'"):
        xdepthrecon.standardize(cube)
    assert xdepthrecon.standardize(cube, temperature="thetao_copy").thetao.dims == CANONICAL_DIMS


def test_non_monotonic_depth_is_refused(cube):
    depth = cube.depth.values.copy()
    depth[[1, 2]] = depth[[2, 1]]
    with pytest.raises(ValueError, match=r"depth axis is not monotonic.*sortby\('depth'\)"):
        xdepthrecon.standardize(cube.assign_coords(depth=depth))


def test_duplicated_depth_is_refused(cube):
    depth = cube.depth.values.copy()
    depth[2] = depth[1]
    with pytest.raises(ValueError, match=r"depth axis repeats values.*drop_duplicates"):
        xdepthrecon.standardize(cube.assign_coords(depth=depth))


def test_pressure_axis_is_refused(cube):
    cube.depth.attrs["units"] = "dbar"
    with pytest.raises(ValueError, match="sea pressure.*not depth"):
        xdepthrecon.standardize(cube)


@pytest.mark.parametrize("selection", [{"time": 0, "depth": 0}, {"time": 0, "depth": 0, "latitude": 0}])
def test_one_or_two_dimensional_arrays_are_refused(cube, selection):
    with pytest.raises(ValueError, match=r"is [12]-D.*was expected.*standardize_surface"):
        xdepthrecon.standardize(cube.thetao.isel(selection))


def test_all_nan_data_is_refused(cube):
    cube["thetao"] = cube.thetao * np.nan
    with pytest.raises(ValueError, match="all NaN.*fill value"):
        xdepthrecon.standardize(cube)


def test_non_numeric_dtype_is_refused(cube):
    cube["thetao"] = cube.thetao.astype(str)
    with pytest.raises(TypeError, match=r"dtype <U.*not a real number.*astype\('float32'\)"):
        xdepthrecon.standardize(cube)


def test_not_an_xarray_object_is_refused(cube):
    with pytest.raises(TypeError, match="expected an xarray Dataset or DataArray, got ndarray"):
        xdepthrecon.standardize(cube.thetao.values)


def test_unnamed_axes_need_explicit_names_and_extra_dims_are_explained(cube):
    anonymous = xr.DataArray(cube.thetao.values[0], dims=("a", "b", "c"), name="thetao", attrs={"units": "degC"})
    anonymous = anonymous.assign_coords(a=cube.depth.values, b=cube.latitude.values, c=cube.longitude.values)
    with pytest.raises(ValueError, match=r"could not find the depth and latitude and longitude axis.*depth='DIM'"):
        xdepthrecon.standardize(anonymous)
    out = xdepthrecon.standardize(anonymous, depth="a", latitude="b", longitude="c")
    np.testing.assert_array_equal(out.thetao.values[0], cube.thetao.values[0])
    extra = cube.thetao.expand_dims(member=3)
    with pytest.raises(ValueError, match=r"dimension 'member' \(size 3\).*isel\(member=0\)"):
        xdepthrecon.standardize(extra)
    assert xdepthrecon.standardize(cube.thetao.expand_dims(member=1)).thetao.dims == CANONICAL_DIMS


def test_surface_field_in_kelvin_with_0_360_longitudes(cube):
    sst = (cube.thetao.isel(depth=0) + np.float32(273.15)).rename("analysed_sst")
    sst.attrs = {"standard_name": "sea_surface_foundation_temperature", "units": "kelvin"}
    sst = sst.assign_coords(longitude=sst.longitude.values % 360).sortby("longitude")
    out = xdepthrecon.standardize_surface(sst.to_dataset())
    assert out.sst.dims == ("time", "latitude", "longitude")
    np.testing.assert_allclose(out.sst.values, cube.thetao.isel(depth=0).values, atol=1e-4)
    with pytest.raises(ValueError, match="could not find the latitude axis.*standardize for it"):
        xdepthrecon.standardize_surface(cube.thetao.isel(latitude=0))


@settings(max_examples=25, deadline=None)
@given(shift=st.integers(0, 15), flip_lat=st.booleans(), flip_depth=st.booleans(), offset=st.sampled_from([0.0, 360.0]))
def test_any_rolling_and_flipping_gives_the_same_cube(shift, flip_lat, flip_depth, offset):
    cube = glorys_like(lons=16)
    raw = cube.roll(longitude=shift, roll_coords=True)
    raw = raw.assign_coords(longitude=(raw.longitude.values % 360.0) + offset * (raw.longitude.values < 0))
    if flip_lat:
        raw = raw.isel(latitude=slice(None, None, -1))
    if flip_depth:
        raw = raw.isel(depth=slice(None, None, -1))
    out = xdepthrecon.standardize(raw)
    np.testing.assert_allclose(out.longitude.values, cube.longitude.values)
    np.testing.assert_array_equal(out.thetao.values, cube.thetao.values)


# --- real files -----------------------------------------------------------------------------------------


def test_real_atlas_longitudes_and_values(shared_data):
    raw = xr.open_dataset(shared_data / "ocean_atlas_subset.nc", decode_times=False)
    out = xdepthrecon.standardize(raw, units="degC")
    lon = out.longitude.values
    assert lon[0] == -179.5 and lon[-1] == 178.5 and np.all(np.diff(lon) > 0)
    assert out.thetao.dims == CANONICAL_DIMS
    assert out.sizes == {"time": 12, "depth": 19, "latitude": 90, "longitude": 180}
    for source_lon in (20.5, 178.5, 180.5, 378.5):
        target = (source_lon + 180.0) % 360.0 - 180.0
        np.testing.assert_array_equal(
            out.thetao.sel(longitude=target).values, raw.TEMP.sel(XAX_SUBSET=source_lon).values
        )
    assert np.isnan(out.thetao.values).mean() == pytest.approx(np.isnan(raw.TEMP.values).mean())
    assert [t.month for t in out.time.values] == list(range(1, 13))


def test_real_atlas_without_units_is_accepted_as_celsius(shared_data):
    raw = xr.open_dataset(shared_data / "ocean_atlas_subset.nc", decode_times=False)
    assert xdepthrecon.standardize(raw).thetao.attrs["units"] == "degC"


def test_real_ostia_kelvin_comes_out_in_celsius(shared_data):
    raw = xr.open_dataset(shared_data / "ostia_monthly.nc")
    out = xdepthrecon.standardize_surface(raw)
    source = raw.surface_temperature.sel(longitude=200.0, method="nearest")
    np.testing.assert_allclose(out.sst.sel(longitude=-160.0, method="nearest").values, source.values - 273.15,
                               atol=1e-4)
    assert 15.0 < float(out.sst.min()) and float(out.sst.max()) < 32.0
    assert np.all(np.diff(out.longitude.values) > 0) and out.longitude.values[0] == -180.0


def test_real_atlantic_profiles_kelvin_unsorted_longitudes(shared_data):
    raw = xr.open_dataset(shared_data / "atlantic_profiles.nc")
    out = xdepthrecon.standardize(raw)
    np.testing.assert_array_equal(out.longitude.values, [-34.5, -29.5, -24.5, -19.5, -14.5, -9.5, -4.5, 0.5])
    assert out.sizes["time"] == 1 and out.sizes["depth"] == 40
    np.testing.assert_allclose(
        out.thetao.isel(time=0).sel(longitude=-34.5).values, raw.theta.sel(lon=325.5).values - 273.15, atol=1e-4
    )
    assert 0.0 < float(out.thetao.min()) < 5.0 and float(out.thetao.max()) < 30.0


def test_real_coads_sst(shared_data):
    raw = xr.open_dataset(shared_data / "coads_climatology.cdf", decode_times=False)
    out = xdepthrecon.standardize_surface(raw)
    assert out.longitude.values[0] == -179.0 and out.sizes["longitude"] == 180
    np.testing.assert_array_equal(out.sst.sel(longitude=21.0).values, raw.SST.sel(COADSX=21.0).values)
