"""read_profiles on the real Argo GDAC files (../shared/data/argo): times and repeated profiles."""

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


def _read(obj) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # QC drops; what is checked here is in the attributes
        return read_profiles(obj)


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
    once = _read(path)
    assert once.sizes["profile"] == 2 and "repeating" not in once.attrs["qc_summary"]
    twice = _read([path, path])
    assert "2 repeating another's platform, cycle and direction" in twice.attrs["qc_summary"]
    xr.testing.assert_equal(twice.reset_coords()[["temperature", "depth"]],
                            once.reset_coords()[["temperature", "depth"]])



def _netcdf(path: Path, *names: str) -> list[np.ndarray]:
    """Variables read with netCDF4 alone: numbers with fill values as NaN, characters as one string per profile."""
    out = []
    with netCDF4.Dataset(path) as nc:
        for name in names:
            values = nc[name][:]
            if values.dtype.kind in "SU":
                rows = np.ma.filled(values, b" ").reshape(values.shape[0] if values.ndim > 1 else 1, -1)
                out.append(np.array([b"".join(row).decode() for row in rows]))
            else:
                out.append(np.ma.filled(values.astype("float64"), np.nan))
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
