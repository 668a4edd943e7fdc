"""grid_profiles: PCHIP in the vertical (checked against scipy) without extrapolation or gap bridging, cells,
windows, reporting."""

from __future__ import annotations

from pathlib import Path

import cftime
import gsw
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.interpolate import CubicSpline, PchipInterpolator

from xdepthrecon.gridding import grid_profiles, interpolate_vertical
from xdepthrecon.io.profiles import profiles_dataset, read_profiles

from tests.conftest import glorys_like

ARGO = Path(__file__).resolve().parents[2] / "shared" / "data" / "argo" / "dac"
#: The GLORYS12 depth levels (m) down to 2000 m, the depth of most Argo profiles.
GLORYS_LEVELS = np.array([
    0.494025, 1.541375, 2.645669, 3.819495, 5.078224, 6.440614, 7.92956, 9.572997, 11.405, 13.46714,
    15.81007, 18.49556, 21.59882, 25.21141, 29.44473, 34.43415, 40.34405, 47.37369, 55.76429, 65.80727,
    77.85385, 92.32607, 109.7293, 130.666, 155.8507, 186.1256, 222.4752, 266.0403, 318.1274, 380.213,
    453.9377, 541.0889, 643.5668, 763.3331, 902.3393, 1062.44, 1245.291, 1452.251, 1684.284, 1941.893,
])


def _profiles(lat, lon, time, depth, temperature) -> xr.Dataset:
    depth = np.atleast_2d(np.asarray(depth, dtype="float64"))
    temperature = np.atleast_2d(np.asarray(temperature, dtype="float64"))
    return profiles_dataset(temperature, depth, np.atleast_1d(lat), np.atleast_1d(lon),
                            time=np.atleast_1d(np.asarray(time, dtype="datetime64[ns]")), attrs={})


def _grid(times=3, depth=(0.0, 10.0, 50.0, 100.0), lat=(0.0, 1.0, 2.0), lon=(10.0, 11.0, 12.0),
          start="2020-01-01", freq="D") -> xr.Dataset:
    """A coordinates-only cube (no thetao, so nothing is land)."""
    return xr.Dataset(coords={"time": pd.date_range(start, periods=times, freq=freq), "depth": list(depth),
                              "latitude": list(lat), "longitude": list(lon)})


def _pchip(depth, temperature, levels) -> np.ndarray:
    """scipy's PCHIP through the samples at ``levels``, NaN outside their range."""
    return PchipInterpolator(depth, temperature, extrapolate=False)(levels)


def test_interpolation_never_extrapolates_or_bridges_big_gaps():
    depth = [[5.0, 10.0, 20.0, 100.0, 110.0, np.nan]]
    temperature = [[20.0, 19.0, 18.0, 10.0, 9.0, np.nan]]
    levels = np.array([0.0, 7.5, 10.0, 15.0, 50.0, 105.0, 110.0, 120.0])
    pchip = _pchip(depth[0][:5], temperature[0][:5], levels)
    out = interpolate_vertical(depth, temperature, levels, dtype="float64")[0]
    np.testing.assert_allclose(out, np.where(np.arange(levels.size) == 4, np.nan, pchip), rtol=1e-12)
    assert np.isnan(out[[0, 4, 7]]).all() and out[2] == 19.0 and out[6] == 9.0
    bridged = interpolate_vertical(depth, temperature, levels, max_gap=np.inf, dtype="float64")[0]
    np.testing.assert_allclose(bridged, pchip, rtol=1e-12)
    assert 10.0 < bridged[4] < 18.0 and np.isnan(bridged[0]) and np.isnan(bridged[-1])
    constant = interpolate_vertical(depth, temperature, levels, max_gap=5.0, max_gap_fraction=0.0, dtype="float64")[0]
    assert np.isnan(constant[3]) and constant[1] == pchip[1]  # the 10 m gap at 15 m is now too big


def test_interpolation_is_pchip_without_overshoot_at_a_sharp_thermocline():
    # A mixed layer at 25 degC over a 10-degree step within 10 m, then slow cooling: a cubic spline rings.
    depth = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 100.0, 200.0, 400.0])
    temperature = np.array([25.0, 25.0, 25.0, 24.9, 15.0, 14.5, 14.0, 12.0, 10.0, 8.0])
    levels = np.arange(0.0, 400.5, 0.5)
    out = interpolate_vertical(depth[None], temperature[None], levels, max_gap=np.inf, dtype="float64")[0]
    np.testing.assert_allclose(out, _pchip(depth, temperature, levels), rtol=1e-12)
    interval = np.clip(np.searchsorted(depth, levels, side="right") - 1, 0, depth.size - 2)
    low = np.minimum(temperature[interval], temperature[interval + 1])
    high = np.maximum(temperature[interval], temperature[interval + 1])
    assert ((out >= low - 1e-12) & (out <= high + 1e-12)).all()  # within the neighbouring samples' range
    spline = CubicSpline(depth, temperature)(levels)
    assert spline.max() > 25.05 and ((spline < low - 0.05) | (spline > high + 0.05)).any()  # it would overshoot
    assert not np.allclose(out, np.interp(levels, depth, temperature))  # and it is not linear either


def test_interpolation_matches_scipy_pchip_on_a_real_argo_profile():
    path = ARGO / "csio" / "2902696" / "profiles" / "D2902696_001.nc"  # South China Sea, 113 levels to 2000 dbar
    if not path.exists():
        pytest.skip(f"the real Argo files are not at {ARGO}")
    with netCDF4.Dataset(path) as nc:  # read alone: delayed mode, every adjusted flag good
        pressure = np.ma.filled(nc["PRES_ADJUSTED"][0].astype("float64"), np.nan)
        temperature = np.ma.filled(nc["TEMP_ADJUSTED"][0].astype("float64"), np.nan)
        latitude = float(nc["LATITUDE"][0])
        flags = b"".join(np.ma.filled(nc["TEMP_ADJUSTED_QC"][0], b" ")).decode().strip()
    keep = np.isfinite(pressure) & np.isfinite(temperature)
    assert set(flags) == {"1"} and keep.sum() == 113
    depth = -gsw.z_from_p(pressure[keep], latitude)
    expected = _pchip(depth, temperature[keep], GLORYS_LEVELS)
    profiles = read_profiles(path)
    out = interpolate_vertical(profiles.depth.values, profiles.temperature.values, GLORYS_LEVELS, max_gap=np.inf,
                               dtype="float64")[0]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-5)  # float32 samples in the file
    assert np.isfinite(out).sum() == np.isfinite(expected).sum() > 35
    gapped = interpolate_vertical(profiles.depth.values, profiles.temperature.values, GLORYS_LEVELS)[0]
    np.testing.assert_allclose(gapped[np.isfinite(gapped)], expected[np.isfinite(gapped)], rtol=1e-6, atol=1e-5)


def test_interpolation_takes_samples_at_levels_exactly_and_handles_any_sample_order():
    levels = np.array([0.494025, 1.541375, 2.645669])
    depth = np.array([[2.645669, 0.494025, np.nan, 1.541375]], dtype="float32")  # float32 rounding, unsorted
    temperature = np.array([[3.0, 1.0, 7.0, 2.0]], dtype="float32")
    out = interpolate_vertical(depth, temperature, levels)
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0]])
    assert out.dtype == np.float32
    assert interpolate_vertical(np.empty((0, 0)), np.empty((0, 0)), levels).shape == (0, 3)
    assert np.isnan(interpolate_vertical([[5.0]], [[1.0]], levels)).all()  # one sample, at no level


def test_profiles_are_averaged_in_their_cell_and_time():
    like = _grid()
    profiles = _profiles(lat=[0.9, 1.2, 0.0], lon=[11.1, 10.8, 12.4],
                         time=["2020-01-02T03:00", "2020-01-02T00:00", "2020-01-01"],
                         depth=[[0.0, 10.0], [0.0, 10.0], [0.0, 100.0]], temperature=[[20.0, 18.0], [22.0, 16.0],
                                                                                      [5.0, 4.0]])
    out = grid_profiles(profiles, like=like, window="12h")
    assert out.x.dims == ("time", "depth", "latitude", "longitude")
    np.testing.assert_array_equal(out.x.values[1, :, 1, 1], [21.0, 17.0, np.nan, np.nan])
    np.testing.assert_array_equal(out.x.values[0, :, 0, 2], [5.0, np.nan, np.nan, 4.0])  # 100 m gap not bridged
    assert int(out.x_mask.sum()) == 4
    assert out.x_mask.dtype == bool and out.x.attrs["units"] == "degC"
    assert out.attrs["profiles_used"] == 3 and out.attrs["profiles_total"] == 3
    assert "xdepthrecon.grid_profiles(window='12h'" in out.attrs["history"]


def test_window_selects_profiles_within_half_its_width():
    like = _grid(times=9)
    profile = _profiles(lat=1.0, lon=11.0, time="2020-01-05", depth=[[0.0, 10.0]], temperature=[[9.0, 8.0]])

    def observed_times(window: str) -> list[int]:
        return np.flatnonzero(grid_profiles(profile, like=like, window=window).x_mask.values[:, 0, 1, 1]).tolist()

    assert observed_times("3D") == [3, 4, 5]
    assert observed_times("2D") == [3, 4, 5]  # +-1 day: the edges count
    assert observed_times("1D") == [4]
    assert observed_times("0D") == [4]
    assert observed_times("month") == list(range(9))
    with pytest.raises(ValueError, match="not a time span"):
        grid_profiles(profile, like=like, window="soon")


def test_profiles_outside_grid_or_time_are_counted_and_reported():
    like = _grid(times=2)
    profiles = _profiles(lat=[1.0, 1.0, 30.0, 1.0, 1.0], lon=[11.0, 14.0, 11.0, 11.0, 11.0],
                         time=["2020-01-01", "2020-01-01", "2020-01-01", "2021-06-01", "2020-01-02"],
                         depth=[[0.0], [0.0], [0.0], [0.0], [5.0]], temperature=[[1.0]] * 5)
    with pytest.warns(UserWarning, match=r"used 1 of 5 profiles; left out: 2 outside the cube's latitude/longitude "
                                         r"grid; 1 in no cube time's window .*; 1 without a cube level"):
        out = grid_profiles(profiles, like=like, window="1D")
    assert out.attrs["profiles_outside_domain"] == 2
    assert out.attrs["profiles_outside_time"] == 1
    assert out.attrs["profiles_without_levels"] == 1
    assert out.attrs["profiles_used"] == 1


def test_profiles_without_a_position_are_counted_as_such():
    profiles = _profiles(lat=[1.0, np.nan, 1.0], lon=[11.0, 11.0, np.nan], time=["2020-01-01"] * 3,
                         depth=[[0.0]] * 3, temperature=[[1.0]] * 3)
    with pytest.warns(UserWarning, match=r"used 1 of 3 profiles; left out: 2 without a latitude or longitude"):
        out = grid_profiles(profiles, like=_grid(times=1), window="1D")
    assert out.attrs["profiles_without_position"] == 2 and out.attrs["profiles_outside_domain"] == 0


def test_edges_of_a_regional_grid_extend_half_a_cell():
    like = _grid(lat=(0.0, 1.0), lon=(10.0, 11.0))
    profiles = _profiles(lat=[-0.5, 1.5, -0.51, 0.0], lon=[9.5, 11.5, 10.0, 11.6], time=["2020-01-01"] * 4,
                         depth=[[0.0]] * 4, temperature=[[1.0], [2.0], [3.0], [4.0]])
    with pytest.warns(UserWarning, match="2 outside"):
        out = grid_profiles(profiles, like=like, window="0D")
    np.testing.assert_array_equal(out.x.values[0, 0], [[1.0, np.nan], [np.nan, 2.0]])


def test_longitude_wraps_on_a_global_grid():
    cube = glorys_like(times=1, lats=4, lons=12, lon_start=-170.0)  # centres -155, -125, ..., 175
    like = cube.drop_vars("thetao")
    profiles = _profiles(lat=[cube.latitude.values[2]] * 2, lon=[-175.0, 179.0], time=[cube.time.values[0]] * 2,
                         depth=[[0.0, 1.0]] * 2, temperature=[[10.0, 10.0], [20.0, 20.0]])
    out = grid_profiles(profiles, like=like)
    assert out.attrs["profiles_outside_domain"] == 0
    assert out.x.values[0, 0, 2, -1] == 15.0
    regional = like.isel(longitude=slice(0, 6))
    with pytest.warns(UserWarning, match="2 outside"):
        grid_profiles(profiles, like=regional)


def test_land_cells_of_the_cube_are_masked_and_counted(cube):
    land = np.argwhere(np.isnan(cube.thetao.values[0, 0]))[0]
    profiles = _profiles(lat=cube.latitude.values[land[0]], lon=cube.longitude.values[land[1]],
                         time=cube.time.values[0], depth=[[cube.depth.values[0]]], temperature=[[7.0]])
    with pytest.warns(UserWarning, match="1 values .* land"):
        out = grid_profiles(profiles, like=cube, window="1h")
    assert not out.x_mask.values.any() and out.attrs["values_on_land"] == 1
    kept = grid_profiles(profiles, like=cube, window="1h", mask_land=False)
    assert kept.x.values[0, 0, land[0], land[1]] == 7.0
    assert kept.x.dtype == cube.thetao.dtype


def test_zero_and_one_profile():
    like = _grid()
    empty = profiles_dataset(np.empty((0, 0)), np.empty((0, 0)), np.empty(0), np.empty(0),
                             time=np.empty(0, dtype="datetime64[ns]"), attrs={})
    out = grid_profiles(empty, like=like)
    assert out.x.shape == (3, 4, 3, 3) and not out.x_mask.values.any()
    assert out.attrs["profiles_total"] == 0
    one = _profiles(lat=2.0, lon=12.0, time="2020-01-03", depth=[[0.0, 100.0]], temperature=[[3.0, 1.0]])
    out = grid_profiles(one, like=like, window="0D", max_gap=np.inf)
    np.testing.assert_allclose(out.x.values[2, :, 2, 2], [3.0, 2.8, 2.0, 1.0])
    assert int(out.x_mask.sum()) == 4


def test_a_table_is_read_before_gridding():
    table = pd.DataFrame({"lat": [1.0, 1.0], "lon": [11.0, 11.0], "time": pd.to_datetime(["2020-01-02"] * 2),
                          "depth": [0.0, 10.0], "temperature": [4.0, 3.0]})
    out = grid_profiles(table, like=_grid(), window="0D")
    np.testing.assert_array_equal(out.x.values[1, :2, 1, 1], [4.0, 3.0])


def test_climatological_cube_matches_by_day_of_year_or_month():
    times = [cftime.DatetimeProlepticGregorian(0, m, 16, has_year_zero=True) for m in (1, 3, 12)]
    like = xr.Dataset(coords={"time": times, "depth": [0.0], "latitude": [0.0], "longitude": [0.0]})
    profiles = _profiles(lat=[0.0] * 5, lon=[0.0] * 5,
                         time=["2011-03-14", "1999-03-31", "2020-12-18", "2021-01-14", "2019-12-31"],
                         depth=[[0.0]] * 5, temperature=[[1.0], [2.0], [3.0], [4.0], [5.0]])
    by_month = grid_profiles(profiles, like=like, window="month")
    np.testing.assert_array_equal(by_month.x.values[:, 0, 0, 0], [4.0, 1.5, 4.0])
    assert "same calendar month of any year" in by_month.attrs["time_matching"]
    with pytest.warns(UserWarning, match="2 in no cube time's window"):
        by_day = grid_profiles(profiles, like=like, window="7D")
    np.testing.assert_array_equal(by_day.x.values[:, 0, 0, 0], [4.0, 1.0, 3.0])
    wide = grid_profiles(profiles, like=like, window="40D")  # 31 December is 16 days from 16 January
    np.testing.assert_array_equal(wide.x.values[:, 0, 0, 0], [4.5, 1.5, 4.0])
    assert isinstance(wide.time.values[0], cftime.DatetimeProlepticGregorian)


def test_bad_arguments_raise_helpful_errors():
    profile = _profiles(lat=1.0, lon=11.0, time="2020-01-01", depth=[[0.0]], temperature=[[1.0]])
    with pytest.raises(ValueError, match="no 1-D time"):
        grid_profiles(profile, like=_grid().drop_vars("time"))
    with pytest.raises(ValueError, match="longitudes are not in"):
        grid_profiles(profile, like=_grid(lon=(190.0, 191.0)))
    with pytest.raises(ValueError, match="must be >= 0"):
        grid_profiles(profile, like=_grid(), max_gap=-1.0)
