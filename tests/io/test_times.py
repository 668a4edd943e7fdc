"""Profile times of every cftime calendar from every layout read_profiles accepts, and their months when gridded."""

from __future__ import annotations

import warnings

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdepthrecon
from xdepthrecon.io.times import as_profile_times

# (calendar, year): real years, a year-1 climatology in every calendar, a year-0 one where the calendar has year 0.
CASES = [(calendar, year) for calendar in ("standard", "proleptic_gregorian", "noleap", "365_day", "360_day",
                                          "julian", "all_leap") for year in (1, 2001)]
CASES += [("proleptic_gregorian", 0), ("noleap", 0), ("360_day", 0), ("all_leap", 0)]
LAYOUTS = ("table", "csv", "cf_dataset", "cf_file", "argo")
LATITUDE = np.linspace(-50.0, 50.0, 12)
LONGITUDE = np.linspace(-170.0, 160.0, 12)


def _cube_times(calendar: str, year: int) -> np.ndarray:
    """Mid-month dates of ``calendar``, as the bundled atlas has (with a time of day)."""
    year_zero = {"has_year_zero": True} if year == 0 and calendar in ("standard", "proleptic_gregorian") else {}
    return np.array([cftime.datetime(year, month, 15, 6, 30, 0, calendar=calendar, **year_zero)
                     for month in range(1, 13)])


def _expected(times: np.ndarray) -> np.ndarray:
    """The canonical datetime64: calendar fields kept, a climatology (year 0 or 1) in the leap year 2000."""
    return np.array([np.datetime64(f"{2000 if t.year <= 1 else t.year:04d}-{t.month:02d}-{t.day:02d}T"
                                   f"{t.hour:02d}:{t.minute:02d}", "ns") for t in times])


def _layout(layout: str, times: np.ndarray, tmp_path):
    """One profile per time (two levels) in ``layout``."""
    calendar = times[0].calendar
    units = f"days since {times[0].year:04d}-01-01"
    n = times.size
    if layout in ("table", "csv"):
        table = pd.DataFrame({"latitude": np.repeat(LATITUDE, 2), "longitude": np.repeat(LONGITUDE, 2),
                              "time": np.repeat(times, 2), "depth": np.tile([5.0, 10.0], n),
                              "temperature": np.tile([20.0, 10.0], n)})
        if layout == "table":
            return table
        table["time"] = [str(t) for t in table["time"]]  # as a CSV writes cftime: ISO text without the calendar
        table.to_csv(tmp_path / "profiles.csv", index=False)
        return tmp_path / "profiles.csv"
    encoded = cftime.date2num(list(times), units, calendar=calendar)
    if layout == "argo":
        return xr.Dataset({
            "TEMP": (("N_PROF", "N_LEVELS"), np.tile([20.0, 10.0], (n, 1)), {"units": "degree_Celsius"}),
            "PRES": (("N_PROF", "N_LEVELS"), np.tile([5.0, 10.0], (n, 1)), {"units": "decibar"}),
            "JULD": ("N_PROF", encoded, {"units": units, "calendar": calendar}),
            "LATITUDE": ("N_PROF", LATITUDE), "LONGITUDE": ("N_PROF", LONGITUDE)})
    ds = xr.Dataset(
        {"temperature": (("profile", "level"), np.tile([20.0, 10.0], (n, 1)), {"units": "degC"})},
        coords={"depth": (("profile", "level"), np.tile([5.0, 10.0], (n, 1)), {"units": "m"}),
                "latitude": ("profile", LATITUDE), "longitude": ("profile", LONGITUDE),
                "time": ("profile", encoded, {"units": units, "calendar": calendar})})
    if layout == "cf_dataset":
        return ds
    ds.to_netcdf(tmp_path / "profiles.nc")
    return tmp_path / "profiles.nc"


def _quiet_read(obj) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pandas format guessing, no QC drops
        return xdepthrecon.read_profiles(obj)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("calendar", "year"), CASES)
def test_times_of_every_calendar_and_layout_read_back_and_grid_into_their_month(calendar, year, layout, tmp_path):
    times = _cube_times(calendar, year)
    profiles = _quiet_read(_layout(layout, times, tmp_path))
    order = np.argsort(profiles.latitude.values)
    np.testing.assert_array_equal(profiles.time.values[order], _expected(times))

    cube = xr.Dataset(coords={"time": times, "depth": [8.0], "latitude": LATITUDE, "longitude": LONGITUDE})
    x = xdepthrecon.grid_profiles(profiles, like=cube)
    assert x.attrs["profiles_outside_time"] == 0
    observed = x.x_mask.isel(depth=0).values  # (time, latitude, longitude)
    assert observed.sum() == times.size
    own_cell = np.eye(times.size, dtype=bool)  # profile i is at latitude i and longitude i, in month i
    np.testing.assert_array_equal(observed, own_cell[:, :, None] & own_cell[None])


def test_the_bundled_atlas_profiles_as_a_cftime_table_keep_their_months():
    atlas = xdepthrecon.open_sample("ocean_atlas").isel(depth=slice(0, 4))
    obs = atlas.depthrecon.sample_profiles(per_tile=2, seed=0)
    dates = dict(zip(as_profile_times(atlas.time.values)[0], atlas.time.values))
    table = obs[["temperature"]].to_dataframe().dropna().reset_index().drop(columns=["profile", "level"])
    table["time"] = [dates[np.datetime64(t, "ns")] for t in table["time"]]  # cftime year-0 dates of the atlas
    back = _quiet_read(table)
    np.testing.assert_array_equal(np.sort(back.time.values), np.sort(obs.time.values))
    x = xdepthrecon.grid_profiles(back, like=atlas)
    per_month = x.x_mask.isel(depth=0).sum(("latitude", "longitude")).values
    expected = pd.Series(obs.time.values).dt.month.value_counts().reindex(range(1, 13), fill_value=0).to_numpy()
    np.testing.assert_array_equal(per_month, expected)


@pytest.mark.parametrize(("date", "match"), [
    (cftime.datetime(2001, 2, 30, calendar="360_day"), "not a date of the real calendar"),
    (cftime.datetime(2001, 2, 29, calendar="all_leap"), "not a date of the real calendar"),
    (cftime.datetime(1900, 2, 29, calendar="julian"), "not a date of the real calendar"),
    (cftime.datetime(2500, 1, 15, calendar="noleap"), "outside the years 1678-2261"),
    (cftime.datetime(1000, 1, 15, calendar="proleptic_gregorian"), "outside the years 1678-2261"),
])
def test_times_that_would_be_shifted_are_refused_by_name(date, match):
    table = pd.DataFrame({"latitude": [0.0], "longitude": [0.0], "time": [date], "depth": [5.0],
                          "temperature": [20.0]})
    with pytest.raises(ValueError, match=match):
        xdepthrecon.read_profiles(table)
    with pytest.raises(ValueError, match=match):
        as_profile_times(np.array([date]))


def test_datetime64_outside_nanoseconds_is_refused_not_wrapped():
    table = pd.DataFrame({"latitude": [0.0], "longitude": [0.0], "depth": [5.0], "temperature": [20.0],
                          "time": np.array(["3000-01-15"], dtype="datetime64[s]")})
    with pytest.raises(ValueError, match="outside the years 1678-2261"):
        xdepthrecon.read_profiles(table)


def test_missing_times_stay_missing_and_are_counted():
    times = [cftime.datetime(2001, 1, 15, calendar="noleap"), None]
    converted, climatology = as_profile_times(np.array(times, dtype=object))
    assert not climatology and converted[0] == np.datetime64("2001-01-15") and np.isnat(converted[1])
