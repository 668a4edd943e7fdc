"""Put a sea surface temperature field on a cube's grid and times: the EO condition of the model."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import is_global, standardize_surface

#: Minimum share of ocean (non-NaN) weight among the interpolation neighbours for a value to be kept.
_MIN_SUPPORT = 0.25


def align_sst(
    sst: xr.Dataset | xr.DataArray,
    like: xr.Dataset | xr.DataArray,
    *,
    tolerance: str | pd.Timedelta | _dt.timedelta | None = None,
    variable: str | None = None,
    units: str | None = None,
) -> xr.Dataset:
    """Interpolate an SST field onto the grid and time steps of ``like``.

    Parameters
    ----------
    sst
        SST in any layout :func:`xdepthrecon.standardize_surface` understands (Kelvin or degC, 0..360 or
        -180..180 longitudes, any resolution).
    like
        The target: a canonical cube (or anything with ``latitude``, ``longitude`` and ``time``).
    tolerance
        Largest time distance between a target time step and the SST time step used for it; default
        half the larger of the target's and the SST's time steps, at least one day (a monthly SST
        then serves the days of its month). Climatological (year-0) axes are matched the same way.
    variable, units
        Passed to :func:`xdepthrecon.standardize_surface` for files without metadata.

    Returns
    -------
    xarray.Dataset
        ``sst(time, latitude, longitude)`` in degC on ``like``'s coordinates. Interpolation is bilinear
        over ocean values only: land (NaN) never leaks into the sea, coastal cells take the ocean
        neighbours, and cells with less than a quarter of ocean weight around them, or outside the SST
        domain, are NaN. ``coverage`` in the attrs is the share of target cells that got a value.

    Raises
    ------
    ValueError
        When the SST and the target do not overlap in space, or no target time step has an SST time
        step within ``tolerance``.
    """
    field = standardize_surface(sst, variable=variable, units=units).sst
    target_time = like["time"] if "time" in like.coords else None
    field = _nearest_times(field, target_time, tolerance)
    latitude = np.asarray(like["latitude"].values, dtype=float)
    longitude = np.asarray(like["longitude"].values, dtype=float)
    _check_overlap(field, latitude, longitude)
    if is_global(field.longitude.values):
        field = _wrap_longitude(field)
    valid = field.notnull().astype("float32")
    weights = valid.interp(latitude=latitude, longitude=longitude)
    total = field.fillna(0.0).interp(latitude=latitude, longitude=longitude)
    out = (total / weights).where(weights >= _MIN_SUPPORT)
    if target_time is not None:
        out = out.assign_coords(time=target_time.values)
    out.attrs = {"standard_name": "sea_surface_temperature", "long_name": "sea surface temperature", "units": "degC"}
    out["latitude"].attrs = dict(like["latitude"].attrs)
    out["longitude"].attrs = dict(like["longitude"].attrs)
    coverage = float(out.notnull().mean())
    call = describe_call("xdepthrecon.align_sst", tolerance=None if tolerance is None else str(tolerance),
                         variable=variable, units=units)
    attrs = with_history(like.attrs if isinstance(like, xr.Dataset) else {}, call)
    attrs["coverage"] = round(coverage, 6)
    return xr.Dataset({"sst": out.transpose("time", "latitude", "longitude")}, attrs=attrs)


def _check_overlap(field: xr.DataArray, latitude: np.ndarray, longitude: np.ndarray) -> None:
    lat_lo, lat_hi = float(field.latitude.min()), float(field.latitude.max())
    lon_lo, lon_hi = float(field.longitude.min()), float(field.longitude.max())
    inside_lat = (latitude >= lat_lo) & (latitude <= lat_hi)
    inside_lon = is_global(field.longitude.values) | ((longitude >= lon_lo) & (longitude <= lon_hi))
    if not inside_lat.any() or not np.any(inside_lon):
        raise ValueError(
            f"the SST covers latitudes {lat_lo:g}..{lat_hi:g} and longitudes {lon_lo:g}..{lon_hi:g}, which do not "
            f"overlap the target grid (latitudes {latitude.min():g}..{latitude.max():g}, longitudes "
            f"{longitude.min():g}..{longitude.max():g}); use an SST product that covers the cube's region."
        )


def _wrap_longitude(field: xr.DataArray) -> xr.DataArray:
    """Add the last column before the first and the first after the last, 360 degrees apart."""
    first = field.isel(longitude=[0]).assign_coords(longitude=field.longitude.values[:1] + 360.0)
    last = field.isel(longitude=[-1]).assign_coords(longitude=field.longitude.values[-1:] - 360.0)
    return xr.concat([last, field, first], dim="longitude")


def _half_step(times: np.ndarray) -> pd.Timedelta:
    """Half the median spacing of a time axis (0 for fewer than two steps)."""
    if times.size < 2:
        return pd.Timedelta(0)
    seconds = np.median([pd.Timedelta(step).total_seconds() for step in np.diff(times)])
    return pd.Timedelta(seconds / 2, unit="s")


def _nearest_times(field: xr.DataArray, target_time: xr.DataArray | None, tolerance) -> xr.DataArray:
    """The SST time step nearest to each target time step, within the tolerance."""
    if target_time is None or "time" not in field.coords:
        if field.sizes["time"] != 1:
            raise ValueError(
                f"the target has no time coordinate but the SST has {field.sizes['time']} time steps; "
                "select the one to use (sst.sel(time=...)) or give the target a time coordinate."
            )
        return field if target_time is None else field.isel(time=[0] * target_time.size)
    source = field.time.values
    if tolerance is None:
        limit = max(pd.Timedelta(days=1), _half_step(target_time.values), _half_step(source))
    else:
        limit = pd.Timedelta(tolerance)
    chosen = []
    missing = []
    for when in target_time.values:
        try:
            distances = np.array([abs(pd.Timedelta(when - s)) for s in source])
        except TypeError:
            raise ValueError(
                f"the target's times ({type(when).__name__}) and the SST's ({type(source[0]).__name__}) use "
                "different calendars or types; convert one (e.g. ds.convert_calendar) so they can be compared."
            ) from None
        best = int(np.argmin(distances))
        (chosen if distances[best] <= limit else missing).append(best if distances[best] <= limit else when)
    if missing:
        raise ValueError(
            f"{len(missing)} of {target_time.size} target time steps (first {missing[0]}) have no SST within "
            f"{limit} (the SST covers {source[0]} .. {source[-1]}); pass tolerance= or an SST for those dates."
        )
    return field.isel(time=chosen)
