"""read_profiles on EN4-, Argo- and argopy-layout files and tables written here in their real layouts, and its QC."""

from __future__ import annotations

import gsw
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdepthrecon.io.profiles as profiles_module
from xdepthrecon.io.profiles import GOOD_FLAGS, pressure_to_depth, read_profiles

JULD_UNITS = "days since 1950-01-01 00:00:00 UTC"
N_LEVELS = 6

# The underlying profiles: depth (m) and temperature (degC) per level, NaN = no sample.
DEPTH = np.array([
    [5.0, 10.0, 20.0, 50.0, 100.0, 200.0],
    [2.0, 15.0, 40.0, 80.0, np.nan, np.nan],
    [5.0, 25.0, 60.0, 150.0, 300.0, 600.0],
    [3.0, 30.0, 90.0, np.nan, np.nan, np.nan],
    [5.0, 10.0, 20.0, 50.0, 100.0, 200.0],  # duplicate of profile 0
    [4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
])
TEMPERATURE = np.array([
    [25.0, 24.5, 23.0, 20.0, 15.0, 10.0],
    [18.0, 17.5, 16.0, 12.0, np.nan, np.nan],
    [28.0, 27.0, 22.0, 14.0, 9.0, 6.0],
    [5.0, 4.5, 45.0, np.nan, np.nan, np.nan],  # 45 degC is impossible (flag says good)
    [25.0, 24.5, 23.0, 20.0, 15.0, 10.0],
    [1.0, 0.5, 0.0, -0.5, -1.0, -1.5],
])
LATITUDE = np.array([10.0, -35.5, 0.25, 60.0, 10.0, 70.0])
LONGITUDE = np.array([200.0, -20.0, 359.5, 5.0, 200.0, 10.0])  # 0..360 and -180..180 mixed
JULD = np.array([25567.25, 25568.5, 25570.0, 25571.75, 25567.25, 25573.0])  # days since 1950 (2020-01-01 06:00 ...)
VALUE_QC = ["111411", "1111  ", "112211", "111   ", "111411", "111111"]  # profile 0/4 level 3 is bad ('4')
POSITION_QC = "111141"  # profile 4 (a duplicate of profile 0) has a bad position flag
PLATFORMS = ["6900001", "6900002", "6900003", "6900004", "6900001", "6900006"]


def _expected_kept() -> list[int]:
    """Profiles surviving QC: 4 has a bad position flag; nothing else is dropped whole."""
    return [0, 1, 2, 3, 5]


def _chars(strings: list[str], width: int) -> np.ndarray:
    return netCDF4.stringtochar(np.array([s.ljust(width) for s in strings], dtype=f"S{width}"))


def _fill(values: np.ndarray, fill: float) -> np.ndarray:
    return np.where(np.isnan(values), fill, values)


def depth_to_pressure(depth: np.ndarray, latitude: np.ndarray) -> np.ndarray:
    """Sea pressure (dbar) at ``depth`` (m) by TEOS-10, independently of the reader: ``gsw.p_from_z(-depth, lat)``."""
    return gsw.p_from_z(-np.asarray(depth, dtype="float64"), latitude)


def write_en4(path, temperature=TEMPERATURE, kelvin=True) -> None:
    """An EN4.2-style profile file: char QC flags, 99999 fill values, POTM_CORRECTED in kelvin."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("N_PROF", len(LATITUDE))
        nc.createDimension("N_LEVELS", N_LEVELS)
        nc.createDimension("STRING8", 8)
        juld = nc.createVariable("JULD", "f8", ("N_PROF",), fill_value=99999.0)
        juld.units = JULD_UNITS
        juld[:] = JULD
        nc.createVariable("JULD_QC", "S1", ("N_PROF",))[:] = np.array(list("111111"), dtype="S1")
        lat = nc.createVariable("LATITUDE", "f8", ("N_PROF",), fill_value=99999.0)
        lat.units = "degree_north"
        lat[:] = LATITUDE
        lon = nc.createVariable("LONGITUDE", "f8", ("N_PROF",), fill_value=99999.0)
        lon.units = "degree_east"
        lon[:] = LONGITUDE
        nc.createVariable("POSITION_QC", "S1", ("N_PROF",))[:] = np.array(list(POSITION_QC), dtype="S1")
        nc.createVariable("PLATFORM_NUMBER", "S1", ("N_PROF", "STRING8"))[:] = _chars(PLATFORMS, 8)
        deph = nc.createVariable("DEPH_CORRECTED", "f4", ("N_PROF", "N_LEVELS"), fill_value=99999.0)
        deph.units = "metre"
        deph[:] = _fill(DEPTH, 99999.0)
        potm = nc.createVariable("POTM_CORRECTED", "f4", ("N_PROF", "N_LEVELS"), fill_value=99999.0)
        potm.long_name = "Potential temperature"
        potm.units = "kelvin" if kelvin else "degree_Celsius"
        potm[:] = _fill(temperature + (273.15 if kelvin else 0.0), 99999.0)
        nc.createVariable("POTM_CORRECTED_QC", "S1", ("N_PROF", "N_LEVELS"))[:] = _chars(VALUE_QC, N_LEVELS)
        nc.createVariable("PROFILE_POTM_QC", "S1", ("N_PROF",))[:] = np.array(list("111111"), dtype="S1")


def write_argo(path, data_mode="RRRRRR", adjusted_offset=None) -> None:
    """An Argo core profile file (multi-profile): PRES in dbar, TEMP, char flags, DATA_MODE, TEMP_ADJUSTED."""
    pressure = depth_to_pressure(DEPTH, LATITUDE[:, None])
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("N_PROF", len(LATITUDE))
        nc.createDimension("N_LEVELS", N_LEVELS)
        nc.createDimension("STRING8", 8)
        nc.createVariable("PLATFORM_NUMBER", "S1", ("N_PROF", "STRING8"))[:] = _chars(PLATFORMS, 8)
        nc.createVariable("DATA_MODE", "S1", ("N_PROF",))[:] = np.array(list(data_mode), dtype="S1")
        juld = nc.createVariable("JULD", "f8", ("N_PROF",), fill_value=999999.0)
        juld.units = JULD_UNITS
        juld.standard_name = "time"
        juld[:] = JULD
        nc.createVariable("JULD_QC", "S1", ("N_PROF",))[:] = np.array(list("111111"), dtype="S1")
        for name, values in (("LATITUDE", LATITUDE), ("LONGITUDE", (LONGITUDE + 180) % 360 - 180)):
            var = nc.createVariable(name, "f8", ("N_PROF",), fill_value=99999.0)
            var[:] = values
        nc.createVariable("POSITION_QC", "S1", ("N_PROF",))[:] = np.array(list(POSITION_QC), dtype="S1")
        pres = nc.createVariable("PRES", "f4", ("N_PROF", "N_LEVELS"), fill_value=99999.0)
        pres.units = "decibar"
        pres.standard_name = "sea_water_pressure"
        pres[:] = _fill(pressure, 99999.0)
        nc.createVariable("PRES_QC", "S1", ("N_PROF", "N_LEVELS"), fill_value=b" ")[:] = _chars(
            [q.replace("4", "1") for q in VALUE_QC], N_LEVELS)
        temp = nc.createVariable("TEMP", "f4", ("N_PROF", "N_LEVELS"), fill_value=99999.0)
        temp.units = "degree_Celsius"
        temp.standard_name = "sea_water_temperature"
        shown = TEMPERATURE if adjusted_offset is None else TEMPERATURE + adjusted_offset
        temp[:] = _fill(shown, 99999.0)
        nc.createVariable("TEMP_QC", "S1", ("N_PROF", "N_LEVELS"), fill_value=b" ")[:] = _chars(VALUE_QC, N_LEVELS)
        adjusted = nc.createVariable("TEMP_ADJUSTED", "f4", ("N_PROF", "N_LEVELS"), fill_value=99999.0)
        adjusted.units = "degree_Celsius"
        adjusted[:] = np.full(DEPTH.shape, 99999.0) if adjusted_offset is None else _fill(TEMPERATURE, 99999.0)
        nc.createVariable("TEMP_ADJUSTED_QC", "S1", ("N_PROF", "N_LEVELS"), fill_value=b" ")[:] = _chars(
            VALUE_QC if adjusted_offset is not None else [" " * N_LEVELS] * len(LATITUDE), N_LEVELS)
        nc.createVariable("PROFILE_TEMP_QC", "S1", ("N_PROF",))[:] = np.array(list("AAAAAA"), dtype="S1")


def argopy_points() -> xr.Dataset:
    """The Argo profiles in argopy's point layout: N_POINTS rows, integer QC flags, TIME decoded."""
    p, level = np.nonzero(np.isfinite(DEPTH))
    pressure = depth_to_pressure(DEPTH, LATITUDE[:, None]).astype("float32")[p, level]
    qc = np.array([[int(c) if c != " " else 9 for c in flags] for flags in VALUE_QC])[p, level]
    time = np.datetime64("1950-01-01", "ns") + (JULD[p] * 86400e9).astype("timedelta64[ns]")
    return xr.Dataset(
        {"PRES": ("N_POINTS", pressure), "TEMP": ("N_POINTS", TEMPERATURE[p, level].astype("float32")),
         "TEMP_QC": ("N_POINTS", qc), "PRES_QC": ("N_POINTS", np.where(qc == 4, 1, qc)),
         "POSITION_QC": ("N_POINTS", np.array([int(POSITION_QC[i]) for i in p])),
         "TIME_QC": ("N_POINTS", np.ones(p.size, dtype=int)),
         "PLATFORM_NUMBER": ("N_POINTS", np.array([int(PLATFORMS[i]) for i in p])),
         "CYCLE_NUMBER": ("N_POINTS", p + 1)},
        coords={"LATITUDE": ("N_POINTS", LATITUDE[p]), "LONGITUDE": ("N_POINTS", (LONGITUDE[p] + 180) % 360 - 180),
                "TIME": ("N_POINTS", time)},
    )


def _quiet(obj, **kwargs) -> xr.Dataset:
    with pytest.warns(UserWarning, match="read_profiles dropped"):
        return read_profiles(obj, **kwargs)


def _assert_same_profiles(a: xr.Dataset, b: xr.Dataset, depth_tolerance: float = 0.0) -> None:
    assert a.sizes == b.sizes
    np.testing.assert_allclose(a.temperature.values, b.temperature.values, atol=2e-5)
    np.testing.assert_allclose(a.depth.values, b.depth.values, atol=depth_tolerance + 1e-9, rtol=1e-6)
    np.testing.assert_array_equal(a.latitude.values, b.latitude.values)
    np.testing.assert_allclose(a.longitude.values, b.longitude.values, atol=1e-12)
    np.testing.assert_array_equal(a.time.values, b.time.values)


@pytest.fixture
def en4_path(tmp_path):
    path = tmp_path / "EN.4.2.2.f.profiles.g10.202001.nc"
    write_en4(path)
    return path


@pytest.fixture
def argo_path(tmp_path):
    path = tmp_path / "argo_prof.nc"
    write_argo(path)
    return path


def test_pressure_to_depth_is_teos10():
    # The example of gsw_z_from_p in the GSW Oceanographic Toolbox (TEOS-10): latitude 4, six pressures.
    pressure = np.array([10.0, 50.0, 125.0, 250.0, 600.0, 1000.0])
    documented = [9.9445834469453, 49.7180897012550, 124.2726219409978, 248.4700576548589, 595.8253480356214,
                  992.0919060719987]
    np.testing.assert_allclose(pressure_to_depth(pressure, 4.0), documented, rtol=1e-12)
    deep = pressure_to_depth(np.array([[0.0, 1000.0, 4000.0]]), np.array([[-60.0], [0.0], [75.0]]))
    np.testing.assert_allclose(deep, -gsw.z_from_p(np.array([0.0, 1000.0, 4000.0]), np.array([[-60.0], [0.0], [75.0]])))
    assert deep.shape == (3, 3) and (deep[:, 0] == 0.0).all() and not np.signbit(deep[:, 0]).any()
    assert np.isnan(pressure_to_depth(np.nan, 10.0))
    assert pressure_to_depth(10000.0, 30.0) == pytest.approx(9713.735, abs=1e-3)  # UNESCO 1983 gave 9712.653
    # gsw computes a depth for any number; a latitude beyond +-90 (an Argo fill position) gets NaN
    assert np.isnan(pressure_to_depth([100.0, 100.0, 100.0], [99999.0, -91.0, np.nan])).all()
    assert np.isfinite(pressure_to_depth(100.0, [90.0, -90.0])).all()


def test_en4_file_reads_to_canonical_profiles(en4_path):
    out = _quiet(en4_path)
    kept = _expected_kept()
    assert out.temperature.dims == ("profile", "level")
    assert out.attrs["featureType"] == "profile"
    assert out.temperature.attrs["units"] == "degC"
    assert out.temperature.attrs["standard_name"] == "sea_water_potential_temperature"
    assert out.depth.attrs["positive"] == "down"
    assert "xdepthrecon.read_profiles()" in out.attrs["history"]
    np.testing.assert_array_equal(out.latitude.values, LATITUDE[kept])
    np.testing.assert_allclose(out.longitude.values, [-160.0, -20.0, -0.5, 5.0, 10.0])
    assert out.time.values[0] == np.datetime64("2020-01-01T06:00")
    assert list(out.platform.values) == [PLATFORMS[i] for i in kept]
    expected = TEMPERATURE[kept].copy()
    expected[0, 3] = np.nan  # flagged '4'
    expected[3, 2] = np.nan  # 45 degC
    got = out.temperature.values
    np.testing.assert_allclose(got[0], np.r_[expected[0][~np.isnan(expected[0])], np.nan], atol=2e-5)
    np.testing.assert_allclose(got[3, :2], [5.0, 4.5], atol=2e-5)
    assert np.isnan(got[3, 2:]).all() and np.isnan(out.depth.values[3, 2:]).all()
    assert out.attrs["qc_dropped_values"] == 2
    assert out.attrs["qc_dropped_profiles"] == 1
    assert "1 with a QC flag not in 1,2,5,8" in out.attrs["qc_summary"]
    assert "1 with temperature outside" in out.attrs["qc_summary"]
    assert "1 with a bad position, time or profile flag" in out.attrs["qc_summary"]


def test_en4_and_argo_files_read_to_the_same_profiles(en4_path, argo_path):
    en4 = _quiet(en4_path)
    argo = _quiet(argo_path)
    _assert_same_profiles(en4, argo, depth_tolerance=1e-3)
    assert argo.temperature.attrs["standard_name"] == "sea_water_temperature"
    assert en4.attrs["qc_dropped_values"] == argo.attrs["qc_dropped_values"]
    assert en4.attrs["qc_dropped_profiles"] == argo.attrs["qc_dropped_profiles"]


def test_argo_delayed_mode_profiles_use_adjusted_values(tmp_path, en4_path):
    path = tmp_path / "argo_adjusted.nc"
    write_argo(path, data_mode="DDDDDD", adjusted_offset=0.5)  # raw TEMP is 0.5 degC off; adjusted is right
    _assert_same_profiles(_quiet(path), _quiet(en4_path), depth_tolerance=1e-3)
    write_argo(path, data_mode="RRRRRR", adjusted_offset=0.5)  # real time: raw values are used
    raw = _quiet(path)
    np.testing.assert_allclose(raw.temperature.values[0, 0], TEMPERATURE[0, 0] + 0.5)


def test_argo_file_opened_without_decoding_reads_the_same(argo_path):
    raw = xr.open_dataset(argo_path, decode_cf=False)
    assert raw["PRES"].attrs["_FillValue"] == 99999.0 and raw["JULD"].dtype == np.float64
    _assert_same_profiles(_quiet(raw), _quiet(argo_path))


def test_argopy_point_layout_reads_to_the_same_profiles(argo_path):
    points = argopy_points()
    from_points = _quiet(points)
    from_file = _quiet(argo_path)
    order = np.lexsort((from_points.latitude.values, from_points.time.values))
    _assert_same_profiles(from_points.isel(profile=order), from_file)
    assert list(from_points.isel(profile=order).platform.values) == list(from_file.platform.values)


def test_table_rows_in_any_order_group_into_profiles():
    rows = []
    for p in range(len(LATITUDE)):
        for level in range(N_LEVELS):
            if np.isfinite(DEPTH[p, level]):
                rows.append({"lat": LATITUDE[p], "lon": LONGITUDE[p], "depth": DEPTH[p, level],
                             "temperature": TEMPERATURE[p, level] + 273.15,
                             "time": pd.Timestamp("1950-01-01") + pd.to_timedelta(JULD[p], "D")})
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    out = _quiet(table, units="K")
    assert out.sizes["profile"] == 5  # rows of profile 0's duplicate join profile 0, as repeated depths
    assert "6 repeating a depth in their profile" in out.attrs["qc_summary"]
    assert out.attrs["qc_dropped_values"] == 7  # and 45 degC
    first = out.isel(profile=int(np.argmin(out.time.values)))
    np.testing.assert_allclose(first.depth.values, DEPTH[0])
    np.testing.assert_allclose(first.temperature.values, TEMPERATURE[0], atol=1e-9)


def test_quality_control_counts_every_reason():
    table = pd.DataFrame({
        "latitude": [0.0, 0.0, 0.0, 0.0, np.nan, 95.0, 1.0, 1.0, 2.0, 2.0],
        "longitude": [10.0] * 4 + [0.0, 0.0, 1.0, 1.0, 2.0, 2.0],
        "time": pd.to_datetime(["2020-01-01"] * 4 + ["2020-01-02"] * 2 + ["2020-01-03"] * 2 + [None, None]),
        "depth": [0.0, 10.0, 10.0, -5.0, 0.0, 0.0, 0.0, 5.0, 0.0, 1.0],
        "temperature": [10.0, 9.0, 8.0, 11.0, 5.0, 5.0, -3.0, 50.0, 4.0, 4.0],
        "temperature_qc": [1, 2, 1, 1, 1, 1, 1, 1, 1, 1],
    })
    with pytest.warns(UserWarning) as record:
        out = read_profiles(table, good_flags=("1",))
    assert out.sizes["profile"] == 1
    np.testing.assert_array_equal(out.temperature.values, [[10.0, 8.0]])
    summary = out.attrs["qc_summary"]
    for part in ("1 with a QC flag not in 1", "2 with temperature outside", "1 with missing or impossible depth",
                 "3 with missing or impossible position or time", "1 left without values"):
        assert part in summary, summary
    assert out.attrs["qc_dropped_values"] == 4
    assert out.attrs["qc_dropped_profiles"] == 4
    assert summary in str(record[0].message)


def test_repeated_depth_keeps_the_first_value():
    table = pd.DataFrame({"lat": [0.0] * 3, "lon": [0.0] * 3, "time": pd.to_datetime(["2020-01-01"] * 3),
                          "depth": [5.0, 5.0, 1.0], "temperature": [10.0, 11.0, 12.0]})
    out = _quiet(table)
    np.testing.assert_array_equal(out.temperature.values, [[12.0, 10.0]])
    assert "1 repeating a depth" in out.attrs["qc_summary"]


def test_zero_and_one_profile_inputs():
    empty = pd.DataFrame({"lat": [], "lon": [], "time": pd.to_datetime([]), "depth": [], "temperature": []})
    out = read_profiles(empty)
    assert out.sizes["profile"] == 0 and out.attrs["qc_dropped_profiles"] == 0
    one = pd.DataFrame({"lat": [1.0, 1.0], "lon": [2.0, 2.0], "time": pd.to_datetime(["2020-01-01"] * 2),
                        "pres": [0.0, 100.0], "temp": [20.0, 15.0]})
    out = read_profiles(one)
    assert out.sizes == {"profile": 1, "level": 2}
    np.testing.assert_allclose(out.depth.values[0], [0.0, pressure_to_depth(100.0, 1.0)])


def test_canonical_profiles_read_back_identically(en4_path):
    out = _quiet(en4_path)
    again = read_profiles(out)
    xr.testing.assert_identical(again.drop_attrs(), out.drop_attrs())
    assert again.attrs["qc_dropped_values"] == 0
    assert again.attrs["history"].count("read_profiles") == 2


def test_kelvin_without_units_and_missing_variables_raise_helpful_errors():
    table = pd.DataFrame({"lat": [0.0], "lon": [0.0], "time": pd.to_datetime(["2020-01-01"]),
                          "depth": [1.0], "temperature": [290.0]})
    with pytest.raises(ValueError, match="look like Kelvin; pass units='K'"):
        read_profiles(table)
    with pytest.raises(ValueError, match="no depth or pressure variable"):
        read_profiles(table.drop(columns="depth"))
    with pytest.raises(ValueError, match="temperature='T' is not a variable"):
        read_profiles(table, temperature="T")
    with pytest.raises(TypeError, match="expects a path"):
        read_profiles([1, 2, 3])
    with pytest.raises(ValueError, match="single characters"):
        read_profiles(table, units="K", good_flags=("12",))


def test_default_good_flags_are_argo_good_values():
    assert GOOD_FLAGS == ("1", "2", "5", "8")
    assert profiles_module.TEMPERATURE_RANGE == (-2.5, 40.0)


def _argo_cycle(schemes: list[str], temp_adjusted: list[float], adjusted_qc: str) -> xr.Dataset:
    """Profiles of one Argo cycle in delayed mode, three levels each, in the Argo file layout (N_PROF x N_LEVELS)."""
    n = len(schemes)
    chars = np.array([list(adjusted_qc)] * n, dtype="S1")
    return xr.Dataset(
        {"PLATFORM_NUMBER": ("N_PROF", np.array(["6900001"] * n, dtype="S8")),
         "CYCLE_NUMBER": ("N_PROF", np.full(n, 7)), "DIRECTION": ("N_PROF", np.array(["A"] * n, dtype="S1")),
         "DATA_MODE": ("N_PROF", np.array(["D"] * n, dtype="S1")),
         "VERTICAL_SAMPLING_SCHEME": ("N_PROF", np.array(schemes, dtype="S256")),
         "JULD": ("N_PROF", np.full(n, 25567.25), {"units": JULD_UNITS}),
         "LATITUDE": ("N_PROF", np.full(n, 10.0)), "LONGITUDE": ("N_PROF", np.full(n, -30.0)),
         "PRES": (("N_PROF", "N_LEVELS"), np.tile([5.0, 10.0, 20.0], (n, 1))),
         "PRES_ADJUSTED": (("N_PROF", "N_LEVELS"), np.tile([5.0, 10.0, 20.0], (n, 1))),
         "TEMP": (("N_PROF", "N_LEVELS"), np.tile([20.5, 19.5, 18.5], (n, 1)) + np.arange(n)[:, None]),
         "TEMP_ADJUSTED": (("N_PROF", "N_LEVELS"), np.tile(temp_adjusted, (n, 1)) + np.arange(n)[:, None]),
         "TEMP_ADJUSTED_QC": (("N_PROF", "N_LEVELS"), chars)},
    )


@pytest.mark.parametrize(("adjusted_qc", "reason"), [("111", "1 without their adjusted value"),
                                                     ("141", "1 with a QC flag not in 1,2,5,8")])
def test_a_delayed_mode_level_whose_adjusted_value_is_filled_is_counted_never_replaced(adjusted_qc, reason):
    cycle = _argo_cycle(["Primary sampling: discrete []"], [20.0, np.nan, 18.0], adjusted_qc)
    with pytest.warns(UserWarning, match=f"dropped 1 values \\({reason}"):
        out = read_profiles(cycle)
    assert out.attrs["qc_dropped_values"] == 1
    np.testing.assert_array_equal(out.temperature.values, [[20.0, 18.0]])  # not the raw 19.5
    np.testing.assert_allclose(out.depth.values, -gsw.z_from_p([[5.0, 20.0]], 10.0))


def test_vertical_sampling_keeps_the_primary_profile_of_a_cycle_by_default():
    cycle = _argo_cycle(["Near-surface sampling: averaged, unpumped [1 dbar]", "Primary sampling: averaged []",
                         "Secondary sampling: discrete [100s]"], [20.0, 19.0, 18.0], "111")
    with pytest.warns(UserWarning, match="2 not of the primary vertical sampling scheme \\(holding 6 values; "
                                         "vertical_sampling='all' keeps them\\)"):
        primary = read_profiles(cycle)
    np.testing.assert_array_equal(primary.temperature.values, [[21.0, 20.0, 19.0]])
    with pytest.warns(UserWarning, match="1 not of the secondary vertical sampling scheme"):
        others = read_profiles(cycle, vertical_sampling="secondary")
    np.testing.assert_array_equal(others.temperature.values[:, 0], [20.0, 22.0])
    everything = read_profiles(cycle, vertical_sampling="all")
    assert everything.sizes["profile"] == 3 and everything.attrs["qc_dropped_profiles"] == 0
    without_scheme = read_profiles(cycle.drop_vars("VERTICAL_SAMPLING_SCHEME").isel(N_PROF=[0]))
    assert without_scheme.sizes["profile"] == 1  # no scheme (EN4, tables, Argo format 2.2): taken as primary
    with pytest.raises(ValueError, match="vertical_sampling='near-surface' is not one of primary, secondary, all"):
        read_profiles(cycle, vertical_sampling="near-surface")


def test_a_table_without_columns_is_refused_by_name():
    with pytest.raises(ValueError, match="the profile table has no columns"):
        read_profiles(pd.DataFrame())
