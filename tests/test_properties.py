"""Property tests (issue 15, the campaign): messy cubes from standardize through sample_profiles, grid_profiles and
encode either give the right answer, checked against an independent computation, or a clear error.

A raw cube is drawn in a layout real files come in (calendar, longitude convention, latitude and depth direction,
packing, dtype, chunks, dimension order, one time step, one level missing). Each value is checked against the raw
input at the same (time, |depth|, latitude, longitude mod 360), found without the library: in the canonical cube, in
every sampled profile and in the gridded profiles. The outcomes are counted and reported at the end of the run.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections import Counter
from dataclasses import dataclass

import cftime
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xdepthrecon
from xdepthrecon import CANONICAL_DIMS, DepthBandAutoencoder

from tests.conftest import glorys_like

pytestmark = pytest.mark.filterwarnings("ignore:this date/calendar/year zero convention")  # year 0 outside CF
OUTCOMES: Counter[str] = Counter()
CALENDARS = ("datetime64", "standard", "proleptic_gregorian", "noleap", "360_day", "julian", "360_day, 30 February")
LONGITUDES = ("-180..180", "0..360", "ferret", "dateline")
DEPTHS = ("positive down", "positive up", "negative")
KINDS = ("float32", "float64", "int16 packed, decoded", "int16 packed, not decoded")
LEVELS = np.array([0.494, 10.0, 47.0, 222.0])
SCALE, OFFSET, FILL = 0.001, 15.0, np.int16(-32767)
NOT_A_DATE = "is not a date of the real calendar"


@pytest.fixture(scope="module", autouse=True)
def report(request):
    """Print the campaign's figures after the module."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None and OUTCOMES:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ntest_properties: {dict(sorted(OUTCOMES.items()))}")


@dataclass
class Raw:
    """A raw cube and what it holds, in its own coordinates: the truth the library's answers are checked against."""

    ds: xr.Dataset
    values: np.ndarray  # (time, depth, lat, lon) float64, NaN where missing, on the raw axes below
    depth: np.ndarray  # metres below the surface
    lat: np.ndarray
    lon: np.ndarray  # degrees east as in the file
    dates: list[tuple[int, int, int]]  # (year, month, day) of each time step
    climatology: bool
    case: str


def _dates(calendar: str, n: int, start: tuple[int, int, int], climatology: bool) -> tuple[list, list]:
    """``n`` daily dates (monthly in a climatology, dated in year 0) from ``start`` and their (year, month, day)."""
    year, month, day = start
    if climatology:
        stamps = [cftime.datetime(0, (month + i - 1) % 12 + 1, 15, calendar=calendar, has_year_zero=True)
                  for i in range(n)]
    elif calendar == "datetime64":
        first = np.datetime64(f"{year:04d}-{month:02d}-01") + np.timedelta64(day - 1, "D")
        stamps = list(first + np.arange(n) * np.timedelta64(1, "D"))
    elif calendar == "360_day, 30 February":  # a date of that calendar only
        stamps = [cftime.datetime(year, 2, 30, calendar="360_day") + dt.timedelta(days=int(i)) for i in range(n)]
    else:
        first = cftime.datetime(year, month, min(day, 28), calendar=calendar)
        stamps = [first + dt.timedelta(days=int(i)) for i in range(n)]
    fields = [(int(str(s)[:4]), int(str(s)[5:7]), int(str(s)[8:10])) for s in stamps]
    return (np.array(stamps) if calendar == "datetime64" else stamps), fields


def _time_coordinate(stamps: list, calendar: str, climatology: bool, encoded: bool) -> tuple:
    """The time coordinate as decoded dates, or as numbers with CF units and calendar (a file not decoded)."""
    if not encoded or calendar == "datetime64":
        return ("time", stamps)
    calendar = calendar.split(",")[0]
    units = "days since 0000-01-01 00:00:00" if climatology else "days since 1990-01-01 00:00:00"
    return ("time", cftime.date2num(stamps, units, calendar=calendar, has_year_zero=climatology or None),
            {"units": units, "calendar": calendar})


@st.composite
def raw_cubes(draw) -> Raw:
    shape = (draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(2, 5)), draw(st.integers(3, 6)))
    n_time, n_depth, n_lat, n_lon = shape
    calendar, longitudes, depths, kind = (draw(st.sampled_from(options)) for options in (CALENDARS, LONGITUDES,
                                                                                          DEPTHS, KINDS))
    descending = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.uniform(2.0, 28.0, shape)
    values[:, 1:][rng.random((n_time, n_depth - 1, n_lat, n_lon)) < 0.2] = np.nan  # the bottom, here and there
    missing = draw(st.none() | st.integers(1, n_depth - 1))
    if missing is not None:
        values[:, missing] = np.nan
    if kind.startswith("int16"):
        packed = np.where(np.isnan(values), FILL, np.round((values - OFFSET) / SCALE)).astype("int16")
        values = np.where(packed == FILL, np.nan, packed * SCALE + OFFSET)
    elif kind == "float32":
        values = values.astype("float32").astype("float64")

    step = 360.0 / n_lon
    lon = {"-180..180": -180.0 + step / 2, "0..360": step / 2, "ferret": 20.5, "dateline": 171.0}[longitudes]
    lon = lon + np.arange(n_lon) * (2.0 if longitudes == "dateline" else step)
    lat = np.linspace(-60.0, 60.0, n_lat)[::-1 if descending else 1]
    depth = LEVELS[:n_depth]
    depth_coord = depth if depths == "positive down" else -depth
    depth_attrs = {"units": "m", "positive": "up" if depths == "positive up" else "down"}
    if depths == "negative":
        depth_attrs.pop("positive")
    start = (draw(st.integers(1990, 2030)), draw(st.integers(1, 12)), draw(st.integers(1, 31)))
    climatology = calendar not in ("datetime64", "360_day, 30 February") and draw(st.booleans())
    stamps, fields = _dates(calendar, n_time, start, climatology)
    encoded = draw(st.booleans())

    data = values.astype("float32" if kind == "float32" else "float64")
    attrs = {"units": "degC", "standard_name": "sea_water_potential_temperature"}
    if kind.startswith("int16"):
        data = packed
        attrs.update(scale_factor=SCALE, add_offset=OFFSET, _FillValue=FILL)
    ds = xr.Dataset({"thetao": (("time", "depth", "latitude", "longitude"), data, attrs)},
                    coords={"time": _time_coordinate(stamps, calendar, climatology, encoded),
                            "depth": ("depth", depth_coord, depth_attrs),
                            "latitude": ("latitude", lat, {"units": "degrees_north"}),
                            "longitude": ("longitude", lon, {"units": "degrees_east"})})
    if kind == "int16 packed, decoded":
        ds = xr.decode_cf(ds, decode_times=False)  # as xr.open_dataset gives it
    if draw(st.booleans()):
        ds = ds.transpose("time", "latitude", "longitude", "depth")
    chunks = draw(st.none() | st.fixed_dictionaries({"time": st.integers(1, 2), "latitude": st.integers(1, 3)}))
    if chunks is not None:
        ds = ds.chunk(chunks)
    case = (f"{calendar}{' climatology' if climatology else ''}{' encoded' if encoded else ''}, lon {longitudes}, "
            f"lat {'descending' if descending else 'ascending'}, depth {depths}, "
            f"{kind}, {'dask ' + str(chunks) if chunks else 'numpy'}, {n_time} steps, missing level {missing}")
    return Raw(ds, values, depth, lat, lon, fields, climatology, case)


def _index(raw: Raw, depth: float, lat: float, lon: float) -> tuple[int, int, int]:
    """Where a canonical (depth, latitude, longitude) is in the raw cube, found by its coordinates alone."""
    (k,) = np.flatnonzero(np.isclose(raw.depth, depth))
    (i,) = np.flatnonzero(np.isclose(raw.lat, lat))
    (j,) = np.flatnonzero(np.isclose(np.mod(raw.lon, 360.0), np.mod(lon, 360.0)))
    return int(k), int(i), int(j)


def _expected_times(raw: Raw) -> np.ndarray | None:
    """The profiles' datetime64 of each step: calendar fields kept, a climatology in 2000; None if not real dates."""
    try:
        return np.array([np.datetime64(dt.datetime(2000 if raw.climatology else y, m, d), "ns")
                         for y, m, d in raw.dates])
    except ValueError:
        return None


def _check_cube(raw: Raw, cube: xr.Dataset) -> None:
    thetao = cube.thetao
    assert thetao.dims == CANONICAL_DIMS and thetao.attrs["units"] == "degC"
    assert np.all(np.diff(cube.latitude.values) > 0) and np.all(np.diff(cube.longitude.values) > 0)
    assert cube.longitude.values.min() >= -180.0 and cube.longitude.values.max() < 180.0
    assert np.all(np.diff(cube.depth.values) > 0) and np.all(cube.depth.values >= 0)
    assert cube.sizes == dict(zip(CANONICAL_DIMS, raw.values.shape))
    k, i, j = np.array([_index(raw, z, la, lo) for lo in cube.longitude.values for la in cube.latitude.values
                        for z in cube.depth.values]).T
    expected = raw.values[:, k, i, j]
    got = thetao.values.transpose(0, 3, 2, 1).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=SCALE / 2 if np.issubdtype(got.dtype, np.float64) else 1e-5)


def _check_profiles(raw: Raw, profiles: xr.Dataset, times: np.ndarray) -> None:
    for p in range(profiles.sizes["profile"]):
        (t,) = np.flatnonzero(times == profiles.time.values[p])
        lat, lon = float(profiles.latitude[p]), float(profiles.longitude[p])
        for depth, value in zip(profiles.depth.values[p], profiles.temperature.values[p]):
            if np.isnan(depth):
                assert np.isnan(value)
                continue
            k, i, j = _index(raw, depth, lat, lon)
            assert value == pytest.approx(raw.values[t, k, i, j], abs=1e-5)


def _chain(ds: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    cube = xdepthrecon.standardize(ds)
    profiles = xdepthrecon.sample_profiles(cube, per_tile=0.6, tile_size=1, seed=7)
    with warnings.catch_warnings():  # a missing level between samples is bridged, then dropped as not ocean
        warnings.filterwarnings("ignore", message="grid_profiles used .* values .* land")
        gridded = xdepthrecon.grid_profiles(profiles, like=cube, window="1D")
    return cube, profiles, gridded


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_cubes())
def test_a_messy_cube_gives_the_raw_values_back_through_standardize_sample_and_grid_or_a_clear_error(raw):
    times = _expected_times(raw)
    if times is None:  # 30 February of a 360_day calendar: refused, never shifted
        cube = xdepthrecon.standardize(raw.ds)
        _check_cube(raw, cube.compute())
        with pytest.raises(ValueError, match=NOT_A_DATE):
            xdepthrecon.sample_profiles(cube, per_tile=0.6, tile_size=1)
        OUTCOMES["clear error"] += 1
        return
    cube, profiles, gridded = _chain(raw.ds)
    assert (cube.thetao.chunks is not None) == (raw.ds.thetao.chunks is not None)  # lazy stays lazy
    _check_cube(raw, cube.compute())
    ocean = np.isfinite(raw.values[:, 0]).sum()
    assert 0 < profiles.sizes["profile"] <= ocean
    _check_profiles(raw, profiles, times)
    assert gridded.attrs["profiles_used"] == profiles.sizes["profile"]
    observed = gridded.x_mask.values
    assert not np.any(observed & np.isnan(cube.thetao.values))
    np.testing.assert_array_equal(gridded.x.values[observed], cube.thetao.values[observed])
    assert observed[:, 0].sum() == profiles.sizes["profile"]  # one column per profile, at its own time
    if raw.ds.thetao.chunks is not None:  # dask and numpy give the same answers
        in_memory = _chain(raw.ds.compute())
        for lazy, eager in zip((cube, profiles, gridded), in_memory):
            xr.testing.assert_equal(lazy.compute(), eager)
            assert lazy.attrs.keys() == eager.attrs.keys()
    OUTCOMES["right answer"] += 1


@settings(max_examples=25, deadline=None)
@given(raw=raw_cubes())
def test_encode_of_a_messy_cube_equals_encode_of_its_canonical_form_with_numpy_or_dask(raw):
    if _expected_times(raw) is None:
        return
    cube = xdepthrecon.standardize(raw.ds).compute()
    torch.manual_seed(0)
    ae = DepthBandAutoencoder(cube.sizes["depth"], 1, (4,), (4,), depth=cube.depth.values,
                              mean=np.full(cube.sizes["depth"], 15.0), std=np.full(cube.sizes["depth"], 5.0))
    canonical = xdepthrecon.encode(cube, ae).compute()
    messy = xdepthrecon.encode(raw.ds, ae).compute()
    xr.testing.assert_allclose(messy.latent, canonical.latent, atol=1e-6)
    xr.testing.assert_equal(messy.ocean_levels, canonical.ocean_levels)
    assert np.array_equal(np.isnan(canonical.latent.values[:, 0]), np.isnan(cube.thetao.values[:, 0]))
    OUTCOMES["right answer (encode)"] += 1


# --- bad inputs of the public functions: an error naming the problem, or a warning counting what was left out ------


def _cube() -> xr.Dataset:
    return glorys_like()


def _profiles() -> xr.Dataset:
    return xdepthrecon.sample_profiles(_cube(), per_tile=200, seed=0)


def _coordinate_with_nan(name: str) -> xr.Dataset:
    cube = _cube()
    values = cube[name].values.astype("float64")
    values[1] = np.nan
    return cube.assign_coords({name: (name, values, cube[name].attrs)})


def _ae() -> DepthBandAutoencoder:
    torch.manual_seed(0)
    return DepthBandAutoencoder(6, 1, (4,), (4,), depth=_cube().depth.values, mean=np.full(6, 15.0),
                                std=np.full(6, 5.0))


def _train(cube: xr.Dataset) -> DepthBandAutoencoder:
    config = xdepthrecon.AutoencoderConfig(latent_channels=2, encoder_channels=(4,), decoder_channels=(4,))
    return xdepthrecon.train_autoencoder(cube, config=config, training=xdepthrecon.TrainingConfig(patch_size=16),
                                         epochs=1, progress=False)


BAD_INPUTS = {
    "standardize: a numpy array": (lambda: xdepthrecon.standardize(_cube().thetao.values), TypeError,
                                   "expected an xarray Dataset or DataArray, got ndarray"),
    "standardize: 2-D field": (lambda: xdepthrecon.standardize(_cube().thetao.isel(time=0, depth=0)), ValueError,
                               "is 2-D.*standardize_surface"),
    "standardize: strings": (lambda: xdepthrecon.standardize(_cube().thetao.astype(str)), TypeError,
                             "not a real number type"),
    "standardize: all NaN": (lambda: xdepthrecon.standardize(_cube().where(False)), ValueError, "is all NaN"),
    "standardize: NaN latitude": (lambda: xdepthrecon.standardize(_coordinate_with_nan("latitude")), ValueError,
                                  "latitude coordinate has 1 missing \\(NaN\\).*positions \\[1\\]"),
    "standardize: NaN longitude": (lambda: xdepthrecon.standardize(_coordinate_with_nan("longitude")), ValueError,
                                   "longitude coordinate has 1 missing"),
    "standardize: NaN depth": (lambda: xdepthrecon.standardize(_coordinate_with_nan("depth")), ValueError,
                               "depth coordinate has 1 missing"),
    "standardize: NaT time": (lambda: xdepthrecon.standardize(_cube().assign_coords(
        time=[np.datetime64("NaT", "ns"), np.datetime64("2020-01-02", "ns")])), ValueError,
        "1 missing values \\(NaT\\)"),
    "standardize: duplicated times": (lambda: xdepthrecon.standardize(_cube().isel(time=[0, 0, 1])), ValueError,
                                      "time axis repeats.*2020-01-01.*drop_duplicates"),
    "standardize: empty selection": (lambda: xdepthrecon.standardize(_cube().sel(latitude=slice(80, 90))),
                                     ValueError, "latitude axis of 'thetao' is empty"),
    "standardize: no time step": (lambda: xdepthrecon.standardize(_cube().isel(time=slice(0, 0))), ValueError,
                                  "time axis of 'thetao' is empty"),
    "standardize_surface: a list": (lambda: xdepthrecon.standardize_surface([1.0]), TypeError, "got list"),
    "sample_profiles: a numpy array": (lambda: xdepthrecon.sample_profiles(_cube().thetao.values, per_tile=1),
                                       TypeError, "truth must be a canonical cube.*got ndarray"),
    "sample_profiles: wrong dims": (lambda: xdepthrecon.sample_profiles(_cube().thetao.transpose("depth", ...),
                                                                         per_tile=1), ValueError,
                                    "truth has dims \\('depth', 'time'.*standardize"),
    "sample_profiles: two rates": (lambda: xdepthrecon.sample_profiles(_cube(), per_tile=1, density=1), ValueError,
                                   "exactly one of density"),
    "sample_profiles: negative rate": (lambda: xdepthrecon.sample_profiles(_cube(), per_tile=-1), ValueError,
                                       "must be >= 0"),
    "sample_profiles: all NaN": (lambda: xdepthrecon.sample_profiles(_cube().where(False), per_tile=1), ValueError,
                                 "top level \\(0.494 m\\) of truth is NaN at every time step"),
    "sample_profiles: top level missing": (lambda: xdepthrecon.sample_profiles(
        _cube().where(_cube().depth > 1), per_tile=1), ValueError, "truth.isel\\(depth=slice\\(1, None\\)\\)"),
    "sample_profiles: empty selection": (lambda: xdepthrecon.sample_profiles(_cube().isel(latitude=slice(0, 0)),
                                                                              per_tile=1), ValueError,
                                         "no latitude values \\(an empty selection\\)"),
    "grid_profiles: a numpy array": (lambda: xdepthrecon.grid_profiles(np.zeros(3), like=_cube()), TypeError,
                                     "read_profiles expects a path, an xarray Dataset or a pandas DataFrame"),
    "grid_profiles: like a numpy array": (lambda: xdepthrecon.grid_profiles(_profiles(), like=np.zeros(3)),
                                          TypeError, "like must be a canonical cube"),
    "grid_profiles: like 0..360": (lambda: xdepthrecon.grid_profiles(_profiles(), like=_cube().assign_coords(
        longitude=_cube().longitude % 360).sortby("longitude")), ValueError, "not in \\[-180, 180\\).*standardize"),
    "grid_profiles: duplicated times": (lambda: xdepthrecon.grid_profiles(_profiles(), like=_cube().isel(
        time=[0, 0, 1])), ValueError, "cube's times repeat \\['2020-01-01T00:00:00.000000000'\\]"),
    "grid_profiles: bad window": (lambda: xdepthrecon.grid_profiles(_profiles(), like=_cube(), window="fortnight"),
                                  ValueError, "window='fortnight' is not a time span"),
    "read_profiles: an int": (lambda: xdepthrecon.read_profiles(3), TypeError, "got int"),
    "read_profiles: no file": (lambda: xdepthrecon.read_profiles("/no/such/file.nc"), FileNotFoundError,
                               "no profile file at '/no/such/file.nc'"),
    "read_profiles: empty table": (lambda: xdepthrecon.read_profiles(pd.DataFrame()), ValueError,
                                   "the profile table has no columns"),
    "encode: a numpy array": (lambda: xdepthrecon.encode(_cube().thetao.values, _ae()), TypeError,
                              "expected an xarray Dataset or DataArray"),
    "encode: not a model": (lambda: xdepthrecon.encode(_cube(), "ae"), TypeError,
                            "expected a DepthBandAutoencoder, got str"),
    "encode: other levels": (lambda: xdepthrecon.encode(_cube().isel(depth=slice(0, 5)), _ae()), ValueError,
                             "5 depth levels but the autoencoder was trained on 6"),
    "decode: not latents": (lambda: xdepthrecon.decode(_cube(), _ae()), ValueError, "needs a Dataset with a 'latent'"),
    "evaluate: wrong dims": (lambda: xdepthrecon.evaluate(_cube().thetao.isel(depth=0), _cube()), ValueError,
                             "lacks the truth's dimensions \\['depth'\\]"),
    "align_sst: a numpy array": (lambda: xdepthrecon.align_sst(np.zeros((2, 3)), _cube()), TypeError,
                                 "expected an xarray Dataset or DataArray"),
    "align_sst: latitudes off the globe": (lambda: xdepthrecon.align_sst(_cube().thetao.isel(depth=0).assign_coords(
        latitude=_cube().latitude + 150).rename("sst"), _cube()), ValueError,
        "latitudes range 90.0 .. 210.0, outside -90 .. 90"),
    "train_autoencoder: all NaN": (lambda: _train(glorys_like(lats=32, lons=32).where(False)), ValueError,
                                   "every time step of the training data is NaN"),
    "train_autoencoder: a level all NaN": (lambda: _train(glorys_like(lats=32, lons=32).pipe(
        lambda cube: cube.where(cube.depth < cube.depth[-1]))), ValueError,
        "depth levels .* hold no valid value in the training cube"),
    "train_autoencoder: no time step": (lambda: _train(glorys_like(lats=32, lons=32).isel(time=slice(0, 0))),
                                        ValueError, "time axis of 'thetao' is empty"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_input_gets_an_error_naming_the_problem(case):
    call, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        call()
    OUTCOMES["bad input: clear error"] += 1


LEFT_OUT = {
    "outside the grid": (lambda p: p.assign(latitude=p.latitude + 200.0),
                         "outside the cube's latitude/longitude grid"),
    "no position": (lambda p: p.assign(latitude=p.latitude.where(False)), "without a latitude or longitude"),
    "outside the time range": (lambda p: p.assign(time=p.time + np.timedelta64(3650, "D")), "in no cube time's window"),
}


@pytest.mark.parametrize("case", list(LEFT_OUT))
def test_profiles_that_cannot_be_placed_are_counted_and_named_in_a_warning(case):
    change, reason = LEFT_OUT[case]
    profiles = change(_profiles())
    with pytest.warns(UserWarning, match=f"used 0 of {profiles.sizes['profile']} profiles; left out: "
                                         f"{profiles.sizes['profile']} {reason}"):
        gridded = xdepthrecon.grid_profiles(profiles, like=_cube())
    assert not gridded.x_mask.any()
    OUTCOMES["bad input: warning naming what was left out"] += 1
