"""Find the axes of a gridded field and bring each to its canonical form.

Canonical axes: ``time`` (decoded), ``depth`` (metres, positive down, increasing), ``latitude``
(increasing, degrees_north) and ``longitude`` (degrees_east in [-180, 180), increasing). Only
coordinate values are read here: the data stay lazy.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.io import _names

AXIS_ATTRS: dict[str, dict[str, str]] = {
    "time": {"standard_name": "time", "axis": "T"},
    "depth": {"standard_name": "depth", "long_name": "depth below sea surface", "units": "m",
              "positive": "down", "axis": "Z"},
    "latitude": {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "longitude": {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"},
}


def single(role: str, found: Sequence[Hashable], argument: str, how: str) -> Hashable:
    """Return the one element of ``found``; raise naming the candidates and ``argument`` if several."""
    if len(found) > 1:
        raise ValueError(
            f"ambiguous {role}: {', '.join(repr(str(f)) for f in found)} all match {how}; "
            f"pass {argument}='NAME' to choose one."
        )
    return found[0]


def find_axes(
    dataset: xr.Dataset, da: xr.DataArray, axes: Sequence[str], explicit: Mapping[str, str | None]
) -> dict[str, Hashable]:
    """Map each canonical axis in ``axes`` to a dimension of ``da`` (time also to a scalar coordinate).

    Explicit names win, then cf_xarray's criteria, then the table of known names. Axes that
    cannot be found are left out of the result.
    """
    dims = list(da.dims)
    found: dict[str, Hashable] = {}
    for axis, name in explicit.items():
        if name is None:
            continue
        if name not in dims:
            raise ValueError(
                f"{axis}={name!r} is not a dimension of {str(da.name)!r}; its dimensions are {tuple(map(str, dims))}."
            )
        found[axis] = name
    cf_found = {**da.cf.axes, **da.cf.coordinates}
    for axis in axes:
        if axis in found:
            continue
        candidates: list[Hashable] = []
        for key in _names.CF_AXIS_KEYS[axis]:
            candidates = [n for n in cf_found.get(key, []) if n not in found.values()]
            if candidates:
                break
        if not candidates:
            candidates = [d for d in dims if d not in found.values() and _names.matches_axis_name(str(d), axis)]
        on_dims = [c for c in candidates if c in dims]
        if on_dims:
            found[axis] = single(f"{axis} axis", on_dims, axis, f"the {axis} axis criteria")
        elif axis == "time" and candidates and dataset[candidates[0]].ndim == 0:
            found[axis] = candidates[0]
        elif candidates and dataset[candidates[0]].ndim > 1:
            raise ValueError(
                f"the {axis} coordinate {str(candidates[0])!r} is not a dimension of {str(da.name)!r} "
                f"(dims {tuple(map(str, dims))}); curvilinear or 2-D coordinates are not supported: "
                "regrid to a regular latitude/longitude grid first."
            )
    return found


def to_canonical_dims(
    dataset: xr.Dataset, da: xr.DataArray, found: Mapping[str, Hashable], dims: Sequence[str]
) -> xr.DataArray:
    """Rename and order ``da`` to ``dims``: squeeze length-1 extra dims, add a missing time axis."""
    known = {name for name in found.values() if name in da.dims}
    for dim in list(da.dims):
        if dim in known:
            continue
        if da.sizes[dim] == 1:
            da = da.isel({dim: 0}, drop=True)
            continue
        raise ValueError(
            f"dimension {str(dim)!r} (size {da.sizes[dim]}) of {str(da.name)!r} is not one of the axes "
            f"{', '.join(dims)}; select one value (e.g. .isel({dim}=0)) or, if it is one of those axes, "
            "pass its name as that axis' argument (e.g. depth='DIM')."
        )
    time_name = found.get("time")
    if time_name is not None and time_name not in da.dims:
        time_attrs = dict(dataset[time_name].attrs)
        da = da.drop_vars(time_name, errors="ignore").expand_dims(time=[dataset[time_name].values])
        da["time"].attrs = time_attrs
        found = {**found, "time": "time"}
    elif time_name is None:
        da = da.expand_dims("time")
        found = {**found, "time": "time"}
    da = da.drop_vars([c for c in da.coords if c not in da.dims])
    rename = {found[axis]: axis for axis in dims if found[axis] != axis}
    clashing = [c for c in rename.values() if c in da.coords and c not in rename]
    da = da.drop_vars(clashing).rename(rename).transpose(*dims)
    empty = [axis for axis in dims if da.sizes[axis] == 0]
    if empty:
        raise ValueError(f"the {' and '.join(empty)} axis of {str(da.name)!r} is empty: the selection left no values; "
                         "check the slice bounds against the coordinates (a decreasing axis needs slice(high, low)).")
    return da


def _finite(values: np.ndarray, axis: str) -> np.ndarray:
    """The values of an axis, refused where any is NaN or infinite."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"the {axis} coordinate has {bad.size} missing (NaN) or infinite values, at positions "
                         f"{bad[:5].tolist()}; every grid point needs its {axis}: fill them from the grid spacing "
                         f"or drop those points (ds.isel({axis}=...)).")
    return values


def _direction(values: np.ndarray, axis: str, unit: str) -> int:
    """Return +1 for increasing, -1 for decreasing values; raise for repeated or non-monotonic ones."""
    _finite(values, axis)
    if values.size < 2:
        return 1
    steps = np.diff(values)
    if np.any(steps == 0):
        repeated = np.unique(values[1:][steps == 0])
        raise ValueError(
            f"the {axis} axis repeats values {repeated[:5].tolist()} {unit}; remove the duplicates "
            f"(e.g. ds.drop_duplicates('{axis}')) before standardising."
        )
    if np.all(steps > 0):
        return 1
    if np.all(steps < 0):
        return -1
    raise ValueError(
        f"the {axis} axis is not monotonic ({values[:6].tolist()} ...); sort it first "
        f"(ds.sortby('{axis}')) after checking that the file is what you expect."
    )


def _increasing(da: xr.DataArray, axis: str, values: np.ndarray, unit: str) -> xr.DataArray:
    direction = _direction(values, axis, unit)
    da = da.assign_coords({axis: values})
    return da.isel({axis: slice(None, None, -1)}) if direction < 0 else da


def standard_depth(da: xr.DataArray) -> xr.DataArray:
    """Depth in metres, positive down, increasing; positive-up or negative depths are converted."""
    if "depth" not in da.coords:
        raise ValueError(
            "the depth axis has no coordinate values; assign them in metres with assign_coords(depth=...)."
        )
    coord = da["depth"]
    units = coord.attrs.get("units")
    if units is not None and _names.is_pressure(units):
        raise ValueError(
            f"the vertical axis is sea pressure ({units!r}), not depth; convert it to depth in metres "
            "(e.g. with TEOS-10 gsw.z_from_p) and assign it as the depth coordinate."
        )
    factor = 1.0 if units is None else _names.depth_factor(units)
    if factor is None:
        raise ValueError(
            f"depth units {units!r} are not understood; the depth axis must be in metres "
            "(units 'm'): convert it and set depth.attrs['units'] = 'm'."
        )
    values = np.asarray(coord.values, dtype="float64") * factor
    positive_up = str(coord.attrs.get("positive", "")).lower() == "up"
    if positive_up or (np.all(values <= 0) and np.any(values < 0)):
        values = -values
    if np.any(values < 0):
        raise ValueError(
            f"depth values mix signs ({values.min()} .. {values.max()} m with positive="
            f"{coord.attrs.get('positive')!r}); depth must be metres below the surface, all >= 0."
        )
    return _increasing(da, "depth", values, "m")


def standard_latitude(da: xr.DataArray) -> xr.DataArray:
    """Latitude increasing within -90 .. 90."""
    values = np.asarray(da["latitude"].values, dtype="float64")
    if np.any(np.abs(values) > 90):
        raise ValueError(
            f"latitudes range {values.min()} .. {values.max()}, outside -90 .. 90; check that the "
            "latitude axis was found correctly (pass latitude='DIM') and is in degrees."
        )
    return _increasing(da, "latitude", values, "degrees_north")


def standard_longitude(da: xr.DataArray) -> xr.DataArray:
    """Longitude in [-180, 180) and increasing: 0..360 and Ferret 20.5..378.5 grids are rolled.

    A cyclic column that repeats a longitude 360 degrees apart is kept once.
    """
    values = _finite(np.asarray(da["longitude"].values, dtype="float64"), "longitude")
    if np.unique(values).size != values.size:
        _direction(np.sort(values), "longitude", "degrees_east")
    wrapped = (values + 180.0) % 360.0 - 180.0
    order = np.argsort(wrapped, kind="stable")
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = np.diff(wrapped[order]) > 0
    order = order[keep]
    if order.size == values.size and np.array_equal(order, np.arange(values.size)):
        return da.assign_coords(longitude=wrapped)
    shift = int(order[0])
    if order.size == values.size and np.array_equal(order, np.roll(np.arange(values.size), -shift)):
        da = da.roll(longitude=-shift, roll_coords=True)
    else:
        da = da.isel(longitude=order)
    return da.assign_coords(longitude=wrapped[order])


def standard_time(da: xr.DataArray) -> xr.DataArray:
    """Decode a numeric time axis with CF ``units`` (``... since ...``); refuse missing or repeated times."""
    if "time" not in da.coords:
        return da
    coord = da["time"]
    units = str(coord.attrs.get("units", ""))
    if np.issubdtype(coord.dtype, np.number) and " since " in units:
        da = da.assign_coords(time=_decode_time(coord.values, units, coord.attrs.get("calendar", "standard")))
    times = pd.Index(np.asarray(da["time"].values).ravel())
    if times.hasnans:
        raise ValueError(f"the time coordinate has {int(times.isna().sum())} missing values (NaT); give every time "
                         "step its date, or drop those steps: ds.sel(time=ds.time.notnull()).")
    if times.has_duplicates:
        raise ValueError(f"the time axis repeats {times[times.duplicated()][:3].tolist()}; remove the duplicates "
                         "(e.g. ds.drop_duplicates('time')) before standardising.")
    return da


def _decode_time(values: np.ndarray, units: str, calendar: str) -> np.ndarray:
    """Decode numeric CF times; climatologies dated from year 0 (Ferret) are decoded with cftime.

    Year 0 is counted in the file's calendar (a 360_day or noleap year has other month lengths); the
    standard calendar, which has no year 0 in CF, is taken as the proleptic Gregorian one, as Ferret does.
    """
    import cftime

    reference = units.split(" since ", 1)[1].strip()
    if reference.startswith(("0000", "0-")):
        calendar = str(calendar).lower()
        calendar = "proleptic_gregorian" if calendar in ("standard", "gregorian") else calendar
        with warnings.catch_warnings():  # CF has no year 0 in the julian calendar; Ferret files do
            warnings.filterwarnings("ignore", message="this date/calendar/year zero convention")
            return np.asarray(cftime.num2date(values, units, calendar=calendar, has_year_zero=True))
    try:
        return xr.coding.times.decode_cf_datetime(values, units, calendar)
    except (ValueError, OverflowError) as error:
        raise ValueError(
            f"cannot decode time units {units!r} (calendar {calendar!r}): {error}; fix the units attribute "
            "or decode the time axis yourself before standardising."
        ) from None


def set_axis_attrs(da: xr.DataArray) -> xr.DataArray:
    """Set the canonical CF attributes on every canonical axis of ``da`` and drop stale encodings."""
    for axis, attrs in AXIS_ATTRS.items():
        if axis in da.coords:
            da[axis].attrs = dict(attrs)
            da[axis].encoding = {}
    return da
