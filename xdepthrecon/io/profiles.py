"""Read ocean temperature profiles into one canonical form, with quality control.

Canonical profiles are a CF discrete-sampling-geometry Dataset (``featureType: profile``) with dims
``(profile, level)``: ``temperature(profile, level)`` in degC, and coordinates ``depth(profile, level)``
in metres (positive down), ``latitude(profile)``, ``longitude(profile)`` in [-180, 180) and
``time(profile)`` (datetime64), optionally ``platform(profile)``. Within a profile the valid samples
come first, in strictly increasing depth; NaN pads the rest of the ``level`` axis.
:func:`read_profiles` turns EN4, Argo and argopy files and plain tables into this form.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import gsw
import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.io import _profile_layouts
from xdepthrecon._provenance import describe_call, with_history

#: Dimension order of canonical profiles.
PROFILE_DIMS: tuple[str, str] = ("profile", "level")
#: QC flags kept by default: Argo 1 good, 2 probably good, 5 value changed, 8 interpolated (EN4 uses 1).
GOOD_FLAGS: tuple[str, ...] = ("1", "2", "5", "8")
#: Sea temperatures (degC) outside this range are impossible and dropped.
TEMPERATURE_RANGE: tuple[float, float] = (-2.5, 40.0)
#: Depths (m) outside 0 .. this are impossible and dropped.
_MAX_DEPTH = 12_000.0
#: Choices of ``vertical_sampling`` in :func:`read_profiles`.
_VERTICAL_SAMPLINGS: tuple[str, ...] = ("primary", "secondary", "all")

_DEPTH_ATTRS = {"standard_name": "depth", "long_name": "depth below sea surface", "units": "m",
                "positive": "down", "axis": "Z"}
_LATITUDE_ATTRS = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}
_LONGITUDE_ATTRS = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}
_TIME_ATTRS = {"standard_name": "time", "long_name": "time of the profile"}


def pressure_to_depth(pressure: np.ndarray | float, latitude: np.ndarray | float) -> np.ndarray:
    """Depth (m, positive down) from sea pressure (dbar) by TEOS-10: ``-gsw.z_from_p(pressure, latitude)``.

    The Gibbs SeaWater library's height of TEOS-10 (IOC, SCOR and IAPSO 2010, *The international
    thermodynamic equation of seawater - 2010*), for a standard ocean (no dynamic height anomaly,
    sea surface geopotential 0), the field's standard since 2010 in place of UNESCO 1983.

    Parameters
    ----------
    pressure
        Sea pressure in dbar (absolute pressure minus 10.1325 dbar), any shape; NaN stays NaN.
    latitude
        Latitude in degrees, broadcastable against ``pressure``.

    Returns
    -------
    numpy.ndarray
        Depth in metres, float64, of the broadcast shape; NaN where the latitude is not a latitude (beyond
        +-90 degrees or NaN, e.g. an Argo fill position of 99999).

    Examples
    --------
    >>> round(float(pressure_to_depth(10000.0, 30.0)), 3)
    9713.735
    """
    pressure = np.asarray(pressure, dtype="float64")
    latitude = np.asarray(latitude, dtype="float64")
    depth = np.asarray(-gsw.z_from_p(pressure, latitude), dtype="float64") + 0.0  # + 0.0: no -0.0 at the surface
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(latitude) <= 90.0, depth, np.nan)


def read_profiles(
    obj: xr.Dataset | pd.DataFrame | str | os.PathLike | Sequence[xr.Dataset | pd.DataFrame | str | os.PathLike],
    *,
    temperature: str | None = None,
    depth: str | None = None,
    pressure: str | None = None,
    latitude: str | None = None,
    longitude: str | None = None,
    time: str | None = None,
    units: str | None = None,
    good_flags: Iterable[str | int] = GOOD_FLAGS,
    vertical_sampling: str = "primary",
) -> xr.Dataset:
    """Read temperature profiles into the canonical form, dropping (and counting) what fails QC.

    Layouts understood:

    - **EN4** (``N_PROF`` x ``N_LEVELS``): ``POTM_CORRECTED`` (preferred) or ``TEMP``, ``DEPH_CORRECTED``,
      ``JULD`` (days since 1950-01-01, decoded or not), ``LATITUDE``, ``LONGITUDE``, flags
      ``POTM_CORRECTED_QC``, ``PROFILE_POTM_QC``, ``POSITION_QC``, ``JULD_QC``; fill values masked.
    - **Argo** profile files and argopy's profile layout: ``PRES`` (dbar, converted to depth with
      :func:`pressure_to_depth`, TEOS-10, at the profile's latitude), ``TEMP`` and their ``*_ADJUSTED``
      values, used for profiles in ``DATA_MODE`` 'A' or 'D' (without ``DATA_MODE``: for profiles whose
      adjusted values exist), ``JULD`` or ``TIME``, ``*_QC`` flags as characters or integers. A
      level of an 'A' or 'D' profile whose adjusted temperature or pressure is the fill value (Argo
      fills the adjusted value of a bad level) is dropped and counted, by its adjusted flag if that is
      not good, else as a value without its adjusted value; the raw value is never used in its place.
      One cycle may hold several profiles (``N_PROF`` > 1): the primary one and near-surface or
      secondary samplings, at the same time and place. Only the primary profile is kept by default
      (see ``vertical_sampling``).
    - **Tables**: a pandas DataFrame, a CSV/parquet path, or a Dataset with one dimension (such as
      argopy's ``N_POINTS``), one row per measurement with latitude, longitude, time, depth (or
      pressure) and temperature columns (names as above or ``lat``, ``lon``, ``time``, ``depth``,
      ``temperature``, ...). Rows are grouped into profiles by latitude, longitude and time (and
      platform, ``CYCLE_NUMBER`` and ``DIRECTION`` where present); rows repeated in a table therefore
      show up as repeated depths of one profile.
    - A path to a netCDF file in any of these layouts, and canonical profiles themselves.
    - A list of any of these, read together (a float's ``_prof.nc`` and its single-cycle files, say).

    Times may be datetime64, ISO 8601 strings, CF-encoded numbers or cftime dates of any calendar
    (standard, proleptic_gregorian, noleap, all_leap, 360_day, julian); they become datetime64 by
    :func:`~xdepthrecon.io.times.as_profile_times`, as cube times do: calendar fields kept, a
    climatology (every date in year 0 or 1) placed in the leap year 2000. Dates that do not exist on
    the real calendar (30 February) or that datetime64[ns] cannot hold raise rather than shift. Argo
    and EN4 ``JULD`` (float days) is rounded to the second (finer where its ``resolution`` says so).

    Quality control, in this order: profiles with a missing or impossible position or time, or a
    position/time flag not in ``good_flags``, or a whole-profile flag of '4' (EN4) or 'F' (Argo),
    are dropped. Values are dropped where a QC flag of the temperature or of the depth/pressure
    (variable ``<name>_QC`` or ``<name>_qc``) is not in ``good_flags`` (a blank flag beside a
    present value counts as not good), where the temperature is outside -2.5 .. 40 degC, where the
    depth is missing or outside 0 .. 12000 m, and where a depth repeats within a profile (the
    first is kept). Profiles left without values, profiles repeating another's position, time and
    values, and Argo profiles repeating another's platform, cycle, direction and vertical sampling
    scheme (as a float's ``_prof.nc`` repeats its single-cycle files) are dropped; of such repeats the
    one of the most adjusted data mode (D, then A, then R) is kept. Nothing is lost silently:
    the counts are in the attributes ``qc_dropped_values``, ``qc_dropped_profiles`` and
    ``qc_summary`` (the reasons), and a warning says what was dropped.

    Parameters
    ----------
    obj
        Dataset, DataFrame or path of the profiles, or a list of them.
    temperature, depth, pressure, latitude, longitude, time
        Names of the variables (or columns) for files the name tables do not cover. Pass ``depth``
        for depth in metres or ``pressure`` for sea pressure in dbar. An explicit ``temperature``
        (or vertical) name is used as it is, without Argo's adjusted values.
    units
        Units of the temperature (``"degC"`` or ``"K"``), overriding its ``units`` attribute.
        Kelvin is converted to degC. Without units, Kelvin-like values raise.
    good_flags
        QC flag values to keep, as single characters or digits. The default keeps Argo's 1 (good),
        2 (probably good), 5 (value changed) and 8 (interpolated); pass ``("1",)`` to keep only good.
        EN4 marks accepted data '1' and rejected '4'.
    vertical_sampling
        Which profiles of an Argo cycle to keep, by ``VERTICAL_SAMPLING_SCHEME``: ``"primary"`` (the
        default) keeps the profile whose scheme starts with "Primary sampling" and drops (and counts)
        the near-surface and secondary samplings of the same cycle; ``"secondary"`` keeps only those
        others; ``"all"`` keeps every profile. Profiles without a scheme (EN4, tables, Argo format
        2.2) count as primary.

    Returns
    -------
    xarray.Dataset
        Canonical profiles (see the module description), with ``featureType: profile``, a
        ``history`` line and the QC counts in attrs. Temperature keeps the file's float precision.

    Raises
    ------
    ValueError
        When a variable cannot be found, units are unknown, times cannot be decoded, or
        ``vertical_sampling`` is not one of "primary", "secondary", "all".
    TypeError
        When ``obj`` is not a Dataset, DataFrame or path.

    Examples
    --------
    >>> profiles = xdepthrecon.read_profiles("EN.4.2.2.f.profiles.g10.202001.nc")  # doctest: +SKIP
    >>> profiles.temperature.dims  # doctest: +SKIP
    ('profile', 'level')
    """
    good = _good_flags(good_flags)
    if vertical_sampling not in _VERTICAL_SAMPLINGS:
        raise ValueError(f"vertical_sampling={vertical_sampling!r} is not one of {', '.join(_VERTICAL_SAMPLINGS)}; "
                         "pass 'primary' (the default), 'secondary' or 'all'.")
    call = describe_call("xdepthrecon.read_profiles", temperature=temperature, depth=depth, pressure=pressure,
                         latitude=latitude, longitude=longitude, time=time, units=units,
                         good_flags=None if good == GOOD_FLAGS else good,
                         vertical_sampling=None if vertical_sampling == "primary" else vertical_sampling)
    names = {"temperature": temperature, "depth": depth, "pressure": pressure, "latitude": latitude,
             "longitude": longitude, "time": time}
    inputs = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    if not inputs:
        raise ValueError("read_profiles got an empty list; pass a path, Dataset or DataFrame, or a list of them.")
    raw = _profile_layouts.concat([_in_depth(_profile_layouts.read_raw(item, names, units, good))
                                   for item in inputs])
    kept, report = _quality_control(raw, raw.vertical, vertical_sampling)
    attrs = {key: value for key, value in raw.attrs.items() if not key.startswith("qc_")}
    temperature, depth, latitude, longitude, time, platform = kept
    out = profiles_dataset(temperature, depth, latitude, longitude, time=time, platform=platform,
                           standard_name=raw.standard_name, attrs=with_history(attrs, call))
    summary = report.summary(good)
    out.attrs.update(qc_dropped_values=report.dropped_values, qc_dropped_profiles=report.dropped_profiles,
                     qc_summary=summary)
    if report.dropped_values or report.dropped_profiles:
        warnings.warn(f"read_profiles {summary} (see the qc_* attributes).", UserWarning, stacklevel=2)
    return out


def _in_depth(raw: _profile_layouts.RawProfiles) -> _profile_layouts.RawProfiles:
    if not raw.vertical_is_pressure:
        return raw
    depth = pressure_to_depth(raw.vertical, raw.latitude[:, None]).astype(raw.vertical.dtype)
    return replace(raw, vertical=depth, vertical_is_pressure=False)


def profiles_dataset(
    temperature: np.ndarray,
    depth: np.ndarray,
    latitude: np.ndarray,
    longitude: np.ndarray,
    *,
    time: np.ndarray,
    platform: np.ndarray | None = None,
    standard_name: str = "sea_water_temperature",
    attrs: dict | None = None,
) -> xr.Dataset:
    """Assemble canonical profiles from arrays that already satisfy the canonical rules.

    Parameters
    ----------
    temperature, depth
        ``(profile, level)`` arrays, degC and metres; valid samples first in increasing depth.
    latitude, longitude, time
        ``(profile,)`` arrays; longitude in [-180, 180), time datetime64.
    platform
        Optional ``(profile,)`` platform identifiers.
    standard_name
        CF standard name of the temperature (potential or in-situ).
    attrs
        Global attributes (a ``history`` line among them).
    """
    coords = {
        "depth": (PROFILE_DIMS, depth, dict(_DEPTH_ATTRS)),
        "latitude": ("profile", np.asarray(latitude, dtype="float64"), dict(_LATITUDE_ATTRS)),
        "longitude": ("profile", np.asarray(longitude, dtype="float64"), dict(_LONGITUDE_ATTRS)),
        "time": ("profile", np.asarray(time, dtype="datetime64[ns]"), dict(_TIME_ATTRS)),
    }
    if platform is not None:
        coords["platform"] = ("profile", np.asarray(platform, dtype=str), {"long_name": "platform identifier"})
    temperature_attrs = {"standard_name": standard_name, "long_name": "sea water temperature", "units": "degC"}
    return xr.Dataset(
        {"temperature": (PROFILE_DIMS, temperature, temperature_attrs)},
        coords=coords,
        attrs={**(attrs or {}), "featureType": "profile", "Conventions": "CF-1.8"},
    )


def is_canonical(ds: object) -> bool:
    """True if ``ds`` is already in the canonical profile form (as :func:`read_profiles` returns)."""
    return (
        isinstance(ds, xr.Dataset)
        and ds.attrs.get("featureType") == "profile"
        and "temperature" in ds.data_vars
        and ds["temperature"].dims == PROFILE_DIMS
        and all(name in ds.coords for name in ("depth", "latitude", "longitude", "time"))
        and np.issubdtype(ds["time"].dtype, np.datetime64)
    )


def _good_flags(good_flags: Iterable[str | int]) -> tuple[str, ...]:
    good = tuple(str(flag).strip() for flag in good_flags)
    if not good or any(len(flag) != 1 for flag in good):
        raise ValueError(f"good_flags must be single characters or digits such as ('1', '2'), got {good!r}.")
    return good


@dataclass
class _Report:
    """What quality control dropped, by reason."""

    flagged_values: int = 0
    missing_adjusted: int = 0
    impossible_temperatures: int = 0
    impossible_depths: int = 0
    repeated_depths: int = 0
    other_sampling: int = 0
    values_in_other_sampling: int = 0
    sampling: str = "primary"
    missing_position_or_time: int = 0
    flagged_profiles: int = 0
    values_in_dropped_profiles: int = 0
    empty_profiles: int = 0
    duplicate_profiles: int = 0
    repeated_cycles: int = 0

    @property
    def dropped_values(self) -> int:
        return (self.flagged_values + self.missing_adjusted + self.impossible_temperatures + self.impossible_depths
                + self.repeated_depths)

    @property
    def dropped_profiles(self) -> int:
        return (self.other_sampling + self.missing_position_or_time + self.flagged_profiles + self.empty_profiles
                + self.duplicate_profiles + self.repeated_cycles)

    def summary(self, good: tuple[str, ...]) -> str:
        """One line naming every non-zero count, e.g. 'dropped 3 values (3 with a QC flag not in 1,2) ...'."""
        lo, hi = TEMPERATURE_RANGE
        values = [(self.flagged_values, f"with a QC flag not in {','.join(good)}"),
                  (self.missing_adjusted, "without their adjusted value (data mode A or D, adjusted value filled)"),
                  (self.impossible_temperatures, f"with temperature outside {lo}..{hi} degC"),
                  (self.impossible_depths, "with missing or impossible depth"),
                  (self.repeated_depths, "repeating a depth in their profile")]
        profiles = [(self.other_sampling, f"not of the {self.sampling} vertical sampling scheme (holding "
                                          f"{self.values_in_other_sampling} values; vertical_sampling='all' keeps "
                                          "them)"),
                    (self.missing_position_or_time, "with missing or impossible position or time"),
                    (self.flagged_profiles, f"with a bad position, time or profile flag "
                                            f"(holding {self.values_in_dropped_profiles} values)"),
                    (self.empty_profiles, "left without values"),
                    (self.duplicate_profiles, "duplicating another profile"),
                    (self.repeated_cycles, "repeating another's platform, cycle and direction (the most "
                                           "adjusted data mode kept)")]

        def part(total: int, what: str, reasons: list[tuple[int, str]]) -> str:
            named = ", ".join(f"{count} {reason}" for count, reason in reasons if count)
            return f"{total} {what}" + (f" ({named})" if named else "")

        return (f"dropped {part(self.dropped_values, 'values', values)} and "
                f"{part(self.dropped_profiles, 'profiles', profiles)}")


def _quality_control(raw: _profile_layouts.RawProfiles, depth: np.ndarray,
                     sampling: str) -> tuple[tuple, _Report]:
    """Drop what fails QC (see :func:`read_profiles`); return the canonical arrays and the report."""
    report = _Report(sampling=sampling)
    temperature = raw.temperature
    present = np.isfinite(temperature) | raw.missing_adjusted
    lat, lon, time = raw.latitude, raw.longitude, raw.time
    selected = raw.of_sampling(sampling)
    position_ok = (np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 360)
                   & ~np.isnat(time))
    keep_profile = selected & position_ok & raw.profile_flag_ok
    report.other_sampling = int((~selected).sum())
    report.values_in_other_sampling = int(present[~selected].sum())
    report.missing_position_or_time = int((selected & ~position_ok).sum())
    report.flagged_profiles = int((selected & position_ok & ~raw.profile_flag_ok).sum())
    report.values_in_dropped_profiles = int(present[selected & ~keep_profile].sum())

    keep = present & keep_profile[:, None]
    flagged = keep & ~raw.value_flag_ok
    keep &= ~flagged
    missing_adjusted = keep & raw.missing_adjusted
    keep &= ~missing_adjusted
    report.missing_adjusted = int(missing_adjusted.sum())
    lo, hi = TEMPERATURE_RANGE
    with np.errstate(invalid="ignore"):
        impossible_t = keep & ((temperature < lo) | (temperature > hi))
        keep &= ~impossible_t
        impossible_z = keep & ~(np.isfinite(depth) & (depth >= 0) & (depth <= _MAX_DEPTH))
    keep &= ~impossible_z
    report.flagged_values = int(flagged.sum())
    report.impossible_temperatures = int(impossible_t.sum())
    report.impossible_depths = int(impossible_z.sum())

    order = np.argsort(np.where(keep, depth, np.inf), axis=1, kind="stable")
    temperature, depth, keep = (np.take_along_axis(a, order, axis=1) for a in (temperature, depth, keep))
    repeated = np.zeros_like(keep)
    repeated[:, 1:] = keep[:, 1:] & keep[:, :-1] & (depth[:, 1:] == depth[:, :-1])
    keep &= ~repeated
    report.repeated_depths = int(repeated.sum())
    order = np.argsort(~keep, axis=1, kind="stable")
    temperature, depth, keep = (np.take_along_axis(a, order, axis=1) for a in (temperature, depth, keep))

    counts = keep.sum(axis=1)
    report.empty_profiles = int((keep_profile & (counts == 0)).sum())
    rows = np.flatnonzero(keep_profile & (counts > 0))
    n_levels = int(counts.max(initial=0))
    temperature = np.where(keep, temperature, np.nan)[rows, :n_levels]
    depth = np.where(keep, depth, np.nan)[rows, :n_levels]
    lon = (lon[rows] + 180.0) % 360.0 - 180.0
    repeated = raw.repeated_cycles(rows)
    duplicate = _duplicates(lat[rows], lon, time[rows], temperature, depth) & ~repeated
    report.repeated_cycles, report.duplicate_profiles = int(repeated.sum()), int(duplicate.sum())
    unique = ~(duplicate | repeated)
    platform = raw.platform[rows][unique] if raw.platform is not None else None
    kept = (temperature[unique], depth[unique], lat[rows][unique], lon[unique], time[rows][unique], platform)
    return kept, report


def _duplicates(lat, lon, time, temperature, depth) -> np.ndarray:
    """True for profiles repeating an earlier one's position, time and values (NaN equal to NaN)."""
    where = pd.DataFrame({"lat": lat, "lon": lon, "time": time}).duplicated(keep=False).to_numpy()
    out = np.zeros(lat.size, dtype=bool)
    if where.any():
        values = np.hstack([temperature[where], depth[where]]).astype("float64")
        table = pd.DataFrame(values).assign(lat=lat[where], lon=lon[where], time=time[where])
        out[where] = table.duplicated(keep="first").to_numpy()
    return out
