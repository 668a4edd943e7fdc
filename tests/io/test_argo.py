"""read_profiles on the real Argo GDAC files (../shared/data/argo), checked against netCDF4 and gsw read alone."""

from __future__ import annotations

import warnings
from pathlib import Path

import gsw
import netCDF4
import numpy as np
import pytest
import xarray as xr

from xdepthrecon.io.profiles import read_profiles

ARGO = Path(__file__).resolve().parents[3] / "shared" / "data" / "argo" / "dac"
FILES = sorted(ARGO.glob("*/*/profiles/*.nc")) + sorted(ARGO.glob("*/*/*_prof.nc"))
pytestmark = pytest.mark.skipif(not FILES, reason=f"the real Argo files are not at {ARGO}")


def _read(obj, **kwargs) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # QC drops; what is checked here is in the attributes
        return read_profiles(obj, **kwargs)


def _juld_in_seconds(path: Path) -> np.ndarray:
    """JULD as stored (float days since 1950-01-01), read with netCDF4 alone, rounded to the second."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        juld = np.asarray(nc["JULD"][:], dtype="float64")
        fill = nc["JULD"].getncattr("_FillValue")
    juld = juld[juld != fill]
    return np.datetime64("1950-01-01T00:00:00", "ns") + np.round(juld * 86_400).astype("int64") * np.timedelta64(
        1, "s")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_times_are_the_file_julds_to_the_second(path):
    times = _read(path).time.values
    assert not (times.astype("int64") % 10**9).any()  # was ...09:01:59.999999744
    assert set(times) <= set(_juld_in_seconds(path))


def test_a_float_prof_file_read_with_its_single_cycle_files_keeps_each_profile_once():
    float_dir = ARGO / "kordi" / "2901780"
    singles = sorted((float_dir / "profiles").glob("*.nc"))
    alone = _read(float_dir / "2901780_prof.nc")
    with pytest.warns(UserWarning, match=f"{len(singles)} repeating another's platform, cycle and direction"):
        together = read_profiles([float_dir / "2901780_prof.nc", *singles])
    assert together.attrs["qc_dropped_profiles"] == alone.attrs["qc_dropped_profiles"] + len(singles)
    assert together.sizes["profile"] == alone.sizes["profile"]
    xr.testing.assert_equal(together.reset_coords()[["temperature", "depth", "time", "platform"]],
                            alone.reset_coords()[["temperature", "depth", "time", "platform"]])


def test_the_delayed_mode_file_of_a_cycle_wins_over_its_real_time_file():
    profiles = ARGO / "nmdis" / "2901623" / "profiles"
    delayed = _read(profiles / "D2901623_061.nc")
    with pytest.warns(UserWarning, match="1 repeating another's platform, cycle and direction"):
        both = read_profiles([profiles / "R2901623_061.nc", profiles / "D2901623_061.nc"])
    xr.testing.assert_equal(both.reset_coords()[["temperature", "depth"]],
                            delayed.reset_coords()[["temperature", "depth"]])


def test_profiles_of_one_cycle_with_different_sampling_schemes_are_not_repeats():
    path = ARGO / "bodc" / "6901929" / "profiles" / "R6901929_221.nc"  # primary + near-surface profile
    once = _read(path, vertical_sampling="all")
    assert once.sizes["profile"] == 2 and "repeating" not in once.attrs["qc_summary"]
    twice = _read([path, path], vertical_sampling="all")
    assert "2 repeating another's platform, cycle and direction" in twice.attrs["qc_summary"]
    xr.testing.assert_equal(twice.reset_coords()[["temperature", "depth"]],
                            once.reset_coords()[["temperature", "depth"]])



def _netcdf(path: Path, *names: str) -> list[np.ndarray]:
    """Variables read with netCDF4 alone: numbers with _FillValue as NaN (no valid range applied), characters as one
    string per profile (or one string for a variable per profile)."""
    out = []
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        for name in names:
            values = nc[name][:]
            if values.dtype.kind in "SU":
                rows = np.where(values == b"", b" ", values).reshape(values.shape[0] if values.ndim > 1 else 1, -1)
                out.append(np.array([b"".join(row).decode() for row in rows]))
            else:
                fill = nc[name].getncattr("_FillValue") if "_FillValue" in nc[name].ncattrs() else np.nan
                out.append(np.where(values == fill, np.nan, values.astype("float64")))
    return out


def _expected_profile(path: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth (TEOS-10) and temperature of profile ``index`` as the Argo rules keep them, from netCDF4 and gsw alone.

    Adjusted values in data mode A or D; a level is kept where temperature and pressure are present and both
    flags are 1, 2, 5 or 8; levels sorted by pressure.
    """
    mode, latitude = _netcdf(path, "DATA_MODE", "LATITUDE")
    suffix = "_ADJUSTED" if mode[0][index] in "AD" else ""
    pressure, temperature, p_qc, t_qc = _netcdf(path, f"PRES{suffix}", f"TEMP{suffix}", f"PRES{suffix}_QC",
                                                f"TEMP{suffix}_QC")
    p, t = pressure[index], temperature[index]
    good = np.array([a in "1258" and b in "1258" for a, b in zip(p_qc[index], t_qc[index])] + [False] * p.size)
    kept = np.isfinite(p) & np.isfinite(t) & good[:p.size]
    order = np.argsort(p[kept])
    return -gsw.z_from_p(p[kept][order], latitude[index]), t[kept][order]


def _valid(profile: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(profile.temperature.values)
    return profile.depth.values[keep], profile.temperature.values[keep]


def test_depths_are_teos10_depths_of_the_file_pressures():
    path = ARGO / "coriolis" / "3902131" / "profiles" / "D3902131_072.nc"  # Deep Argo, to ~3980 dbar
    depth, temperature = _valid(_read(path).isel(profile=0))
    expected_depth, expected_temperature = _expected_profile(path, 0)
    np.testing.assert_allclose(depth, expected_depth, rtol=1e-6)
    np.testing.assert_array_equal(temperature, expected_temperature.astype(temperature.dtype))
    assert depth.max() > 3900


def _present_levels(path: Path) -> np.ndarray:
    """Per profile, the levels with a temperature: raw TEMP, or TEMP_ADJUSTED in data mode A or D (netCDF4 alone)."""
    (mode,) = _netcdf(path, "DATA_MODE")
    (raw,) = _netcdf(path, "TEMP")
    adjusted = _netcdf(path, "TEMP_ADJUSTED")[0] if "A" in mode[0] or "D" in mode[0] else raw
    in_adjusted_mode = np.array([m in "AD" for m in mode[0]])[:, None]
    return (np.isfinite(raw) | (in_adjusted_mode & np.isfinite(adjusted))).sum(axis=1)


def _primary(path: Path) -> np.ndarray:
    """Indices of the primary profiles: VERTICAL_SAMPLING_SCHEME 'Primary sampling...' (all without the variable)."""
    with netCDF4.Dataset(path) as nc:
        has_scheme = "VERTICAL_SAMPLING_SCHEME" in nc.variables
        n_prof = nc.dimensions["N_PROF"].size
    if not has_scheme:
        return np.arange(n_prof)
    (schemes,) = _netcdf(path, "VERTICAL_SAMPLING_SCHEME")
    return np.flatnonzero([scheme.startswith("Primary sampling") for scheme in schemes])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_primary_profiles_are_the_file_values_and_every_dropped_value_is_counted(path):
    out = _read(path)
    primary = _primary(path)
    if out.sizes["profile"] < primary.size:  # a profile dropped whole (bad position or time): not compared here
        assert out.attrs["qc_dropped_profiles"] >= primary.size - out.sizes["profile"]
        return
    assert out.sizes["profile"] == primary.size
    for profile, index in zip(out.profile.values, primary):
        depth, temperature = _valid(out.isel(profile=profile))
        expected_depth, expected_temperature = _expected_profile(path, index)
        np.testing.assert_allclose(depth, expected_depth, rtol=1e-6)
        np.testing.assert_array_equal(temperature, expected_temperature.astype(temperature.dtype))
    kept = int(np.isfinite(out.temperature.values).sum())
    assert out.attrs["qc_dropped_values"] == _present_levels(path)[primary].sum() - kept


def test_delayed_mode_levels_with_filled_adjusted_values_are_counted():
    path = ARGO / "incois" / "2902269" / "profiles" / "D2902269_001.nc"
    raw, adjusted, adjusted_pressure, flags = _netcdf(path, "TEMP", "TEMP_ADJUSTED", "PRES_ADJUSTED",
                                                      "TEMP_ADJUSTED_QC")
    filled = np.isfinite(raw[0]) & ~(np.isfinite(adjusted[0]) & np.isfinite(adjusted_pressure[0]))
    assert (filled.sum(), np.isfinite(raw[0]).sum()) == (238, 329)
    assert {flags[0][i] for i in np.flatnonzero(filled)} == {"4"}
    with pytest.warns(UserWarning, match=r"dropped 238 values \(238 with a QC flag not in 1,2,5,8\)"):
        out = read_profiles(path)  # was: 91 values kept and "dropped 0 values"
    assert int(np.isfinite(out.temperature.values).sum()) == 329 - 238
    assert out.attrs["qc_dropped_values"] == 238


def test_secondary_profiles_of_a_cycle_are_dropped_and_counted_unless_asked_for():
    path = ARGO / "bodc" / "6901929" / "profiles" / "R6901929_221.nc"  # primary + near-surface (unpumped)
    (schemes,) = _netcdf(path, "VERTICAL_SAMPLING_SCHEME")
    assert schemes[0].startswith("Primary sampling") and schemes[1].startswith("Near-surface sampling")
    near_surface_values = int(_present_levels(path)[1])
    with pytest.warns(UserWarning, match=f"1 not of the primary vertical sampling scheme \\(holding "
                                         f"{near_surface_values} values"):
        primary = read_profiles(path)
    secondary = _read(path, vertical_sampling="secondary")
    everything = _read(path, vertical_sampling="all")
    assert (primary.sizes["profile"], secondary.sizes["profile"], everything.sizes["profile"]) == (1, 1, 2)
    for out, index in ((primary, 0), (secondary, 1)):
        depth, temperature = _valid(out.isel(profile=0))
        expected_depth, expected_temperature = _expected_profile(path, index)
        np.testing.assert_allclose(depth, expected_depth, rtol=1e-6)
        np.testing.assert_array_equal(temperature, expected_temperature.astype(temperature.dtype))
    assert "vertical_sampling='secondary'" in secondary.attrs["history"]


def test_all_files_together_give_one_profile_per_float_cycle_and_direction():
    out = _read(FILES)
    with netCDF4.Dataset(FILES[0]):
        pass
    keys = set()
    for path in FILES:
        platform, cycle, direction = _netcdf(path, "PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION")
        keys |= {(p.strip(), int(c), d) for p, c, d in zip(platform, cycle, direction[0])}
    assert out.sizes["profile"] <= len(keys)
    times = out.reset_coords()[["platform", "time"]].to_dataframe()
    assert not times.duplicated().any()  # no two profiles of one float at one time (was: primary + secondary)
