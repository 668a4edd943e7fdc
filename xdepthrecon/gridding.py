"""Grid canonical profiles onto a cube's grid, levels and times: the sparse model input ``x``.

Each profile is interpolated in the vertical to the cube's levels by PCHIP (shape-preserving piecewise
cubic) inside its sampled range only, then assigned to the nearest grid cell, and the profiles of a cell
within a time window around each cube time are averaged. Everything is vectorised numpy; profiles that
fall outside the grid or the time axis are counted and reported, never silently lost.
"""

from __future__ import annotations

import datetime as _dt
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import CANONICAL_DIMS, is_global, is_undated
from xdepthrecon.io.profiles import is_canonical, read_profiles
from xdepthrecon.io.times import TimeWindows

#: A profile sample within this many metres of a cube level is taken as the value at that level.
_SNAP = 1e-3
#: Profiles interpolated at a time (bounds the temporary memory).
_CHUNK = 65_536
#: Padding depth (m) of missing samples during interpolation; beyond any real depth.
_PAD = 1.0e5
#: Width (degrees) assumed for a grid axis of one cell when the other axis gives no spacing either.
_FALLBACK_CELL = 1.0


def grid_profiles(
    profiles: xr.Dataset,
    like: xr.Dataset | xr.DataArray,
    *,
    window: str | pd.Timedelta | _dt.timedelta | np.timedelta64 = "7D",
    max_gap: float = 25.0,
    max_gap_fraction: float = 0.25,
    mask_land: bool = True,
) -> xr.Dataset:
    """Grid profiles onto the grid, levels and times of a canonical cube.

    1. **Vertical**: each profile is interpolated to the cube's depth levels by PCHIP, the
       shape-preserving piecewise cubic of :class:`scipy.interpolate.PchipInterpolator` (as the Argo
       community recommends: no overshoot between samples, so no spurious extrema at a sharp
       thermocline), only inside its sampled range (never extrapolated). A sample within 1 mm of a
       level is taken as it is.
       A level between two samples further apart than ``max_gap + max_gap_fraction * depth``
       metres is left empty (the default allows 27.5 m at 10 m depth, 150 m at 500 m, 525 m at
       2000 m: standard bottle levels are bridged, a missing thermocline is not).
    2. **Horizontal**: each profile goes to the grid cell whose centre is nearest (cells are bounded
       half-way between centres, the outer cells by half their spacing); longitude wraps for a
       grid that spans 360 degrees. Profiles outside every cell are counted, not used.
    3. **Time**: cube time ``t`` takes the profiles with ``|time - t| <= window / 2``; a profile may
       fall in the windows of several cube times. ``window="month"`` takes the profiles of the same
       calendar month instead. For a climatological cube (cftime times in year 0 or 1, as Ferret
       climatologies have) only the time of year counts: profile and cube dates are compared by
       day of year (on a leap-year calendar, circular over the new year) or, with ``"month"``, by month.
       An undated cube (one time step without a time coordinate, as :func:`xdepthrecon.standardize`
       gives for a field without time) takes every profile, whatever its time: ``window`` is not used.
    4. Where several profiles fall in one cell, level and time, ``x`` is their mean.

    Parameters
    ----------
    profiles
        Canonical profiles (see :func:`xdepthrecon.read_profiles`); anything else is read with it first.
    like
        Canonical cube (see :func:`xdepthrecon.standardize`) whose time, depth, latitude and
        longitude define the output; with ``mask_land``, its ``thetao`` NaNs mark land.
    window
        Full width of the time window (pandas Timedelta string such as ``"7D"`` or ``"12h"``, a
        timedelta) or ``"month"``.
    max_gap, max_gap_fraction
        Largest gap between two samples bridged by interpolation, in metres: ``max_gap +
        max_gap_fraction * depth``. Pass ``max_gap_fraction=0`` for a constant threshold,
        ``max_gap=np.inf`` to bridge any gap.
    mask_land
        Drop (and count) values in cells where the cube's ``thetao`` is NaN, so that ``x_mask``
        lies within the ocean. Reads ``thetao``, one time at a time.

    Returns
    -------
    xarray.Dataset
        ``x(time, depth, latitude, longitude)`` in degC (NaN where unobserved; dtype of
        ``thetao``, float32 without it) and ``x_mask`` (bool, True where observed), on ``like``'s
        coordinates. Attributes count the profiles: ``profiles_total``, ``profiles_used``,
        ``profiles_without_position``, ``profiles_outside_domain``, ``profiles_outside_time``,
        ``profiles_without_levels`` (no cube level inside their range), ``values_on_land``; a warning names
        any that were left out.

    Examples
    --------
    >>> gridded = xdepthrecon.grid_profiles(profiles, like=cube, window="7D")  # doctest: +SKIP
    >>> gridded.x.dims  # doctest: +SKIP
    ('time', 'depth', 'latitude', 'longitude')
    """
    call = describe_call("xdepthrecon.grid_profiles", window=str(window), max_gap=max_gap,
                         max_gap_fraction=max_gap_fraction, mask_land=mask_land)
    if not is_canonical(profiles):
        profiles = read_profiles(profiles)
    thetao, coords = _cube_parts(like)
    levels = np.asarray(coords["depth"].values, dtype="float64")
    lat = np.asarray(coords["latitude"].values, dtype="float64")
    lon = np.asarray(coords["longitude"].values, dtype="float64")
    dtype = thetao.dtype if thetao is not None and np.issubdtype(thetao.dtype, np.floating) else np.dtype("float32")
    if max_gap < 0 or max_gap_fraction < 0:
        raise ValueError(f"max_gap ({max_gap}) and max_gap_fraction ({max_gap_fraction}) must be >= 0.")

    values = interpolate_vertical(profiles["depth"].values, profiles["temperature"].values, levels,
                                  max_gap=max_gap, max_gap_fraction=max_gap_fraction, dtype=dtype)
    has_level = np.isfinite(values).any(axis=1)
    lat_index, lat_inside = _nearest_cell(profiles["latitude"].values, lat, grid_spacing(lon), periodic=False)
    lon_index, lon_inside = _nearest_cell(profiles["longitude"].values, lon, grid_spacing(lat), periodic=is_global(lon))
    inside = lat_inside & lon_inside
    positioned = np.isfinite(profiles["latitude"].values) & np.isfinite(profiles["longitude"].values)
    cell = lat_index * lon.size + lon_index
    if "time" in coords:
        windows = TimeWindows(coords["time"].values, profiles["time"].values, window)
        members_of, matching = windows.members, windows.description
    else:
        everyone = np.arange(values.shape[0])
        members_of, matching = (lambda t: everyone), "every profile (undated cube: no time coordinate)"

    n_times, n_cells = like.sizes["time"], lat.size * lon.size
    x = np.full((n_times, levels.size, lat.size, lon.size), np.nan, dtype=dtype)
    matched = np.zeros(values.shape[0], dtype=bool)
    on_land = 0
    for t in range(n_times):
        members = members_of(t)
        matched[members] = True
        members = members[inside[members] & has_level[members]]
        if members.size == 0:
            continue
        mean = _cell_mean(values[members], cell[members], n_cells).reshape(x.shape[1:])
        if mask_land and thetao is not None:
            land = np.isnan(np.asarray(thetao.isel(time=t).values))
            on_land += int(np.count_nonzero(np.isfinite(mean) & land))
            mean[land] = np.nan
        x[t] = mean

    counts = {
        "profiles_total": int(values.shape[0]),
        "profiles_used": int((inside & matched & has_level).sum()),
        "profiles_without_position": int((~positioned).sum()),
        "profiles_outside_domain": int((~inside & positioned).sum()),
        "profiles_outside_time": int((inside & ~matched).sum()),
        "profiles_without_levels": int((inside & matched & ~has_level).sum()),
        "values_on_land": on_land,
    }
    _warn_left_out(counts, matching)
    out_coords = {name: coords[name].variable for name in CANONICAL_DIMS if name in coords}
    x_attrs = {"long_name": "temperature of the profiles gridded to the cube", "units": "degC",
               "standard_name": profiles["temperature"].attrs.get("standard_name", "sea_water_temperature")}
    history = {"history": profiles.attrs["history"]} if "history" in profiles.attrs else {}
    return xr.Dataset(
        {"x": (CANONICAL_DIMS, x, x_attrs),
         "x_mask": (CANONICAL_DIMS, np.isfinite(x), {"long_name": "cell, level and time observed by profiles"})},
        coords=out_coords,
        attrs={**with_history(history, call), **counts, "time_matching": matching},
    )


def interpolate_vertical(
    depth: np.ndarray,
    temperature: np.ndarray,
    levels: np.ndarray,
    *,
    max_gap: float = 25.0,
    max_gap_fraction: float = 0.25,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Interpolate profiles ``(profile, level)`` to ``levels``, inside each one's sampled range only.

    The vertical step of :func:`grid_profiles` (see there for the rules): PCHIP through each profile's
    samples, equal to :class:`scipy.interpolate.PchipInterpolator` on them, vectorised over profiles
    of different lengths. For other users of the profiles on cube levels, such as baselines. Samples may
    come in any order (a repeated depth keeps its first sample); NaN marks no sample.

    Parameters
    ----------
    depth, temperature
        ``(profile, sample)`` arrays of depth (m) and temperature.
    levels
        Increasing target depths (m).
    max_gap, max_gap_fraction
        Largest bridged gap between samples: ``max_gap + max_gap_fraction * level`` metres.
    dtype
        Floating dtype of the result.

    Returns
    -------
    numpy.ndarray
        ``(profile, len(levels))``, NaN where a level is outside the profile or in a too-big gap.
    """
    levels = np.asarray(levels, dtype="float64")
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth and temperature must be (profile, sample) arrays, got shape {depth.shape}.")
    if levels.size and (levels.max() >= _PAD / 2 or np.any(np.diff(levels) <= 0)):
        raise ValueError("levels must be increasing depths in metres, below 50 km.")
    allowed = max_gap + max_gap_fraction * levels
    out = np.empty((depth.shape[0], levels.size), dtype=dtype)
    for start in range(0, depth.shape[0], _CHUNK):
        stop = start + _CHUNK
        out[start:stop] = _interpolate_chunk(np.asarray(depth[start:stop], dtype="float64"),
                                             np.asarray(temperature[start:stop], dtype="float64"), levels, allowed)
    return out


def _interpolate_chunk(depth: np.ndarray, temperature: np.ndarray, levels: np.ndarray,
                       allowed: np.ndarray) -> np.ndarray:
    """PCHIP of each row's samples at ``levels``, inside its range and its bridged gaps (see :func:`grid_profiles`)."""
    rows, width = depth.shape
    if width == 0 or levels.size == 0:
        return np.full((rows, levels.size), np.nan)
    key, temperature, count = _sorted_samples(depth, temperature)
    slope = _pchip_slopes(key, temperature, count)
    # One searchsorted for all rows: shift row r by r * 2 * _PAD so the rows stay sorted end to end.
    shift = np.arange(rows)[:, None] * (2 * _PAD)
    below = np.searchsorted((key + shift).ravel(), (levels[None, :] + shift).ravel(), side="right")
    below = below.reshape(rows, levels.size) - np.arange(rows)[:, None] * width  # samples at or above the level
    upper = np.minimum(below, width - 1)
    lower = np.maximum(below - 1, 0)
    d0, d1 = np.take_along_axis(key, lower, axis=1), np.take_along_axis(key, upper, axis=1)
    t0, t1 = np.take_along_axis(temperature, lower, axis=1), np.take_along_axis(temperature, upper, axis=1)
    s0, s1 = np.take_along_axis(slope, lower, axis=1), np.take_along_axis(slope, upper, axis=1)
    z = levels[None, :]
    at_lower = (below >= 1) & (np.abs(z - d0) <= _SNAP)
    at_upper = (below < count) & (np.abs(d1 - z) <= _SNAP)
    between = (below >= 1) & (below < count) & (d1 - d0 <= allowed[None, :])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        h = d1 - d0
        u = (z - d0) / h
        hermite = ((1 + 2 * u) * (1 - u) ** 2 * t0 + u**2 * (3 - 2 * u) * t1
                   + h * u * (1 - u) * ((1 - u) * s0 - u * s1))
    return np.where(at_lower, t0, np.where(at_upper, t1, np.where(between, hermite, np.nan)))


def _sorted_samples(depth: np.ndarray, temperature: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's valid samples first, by increasing depth (a repeated depth keeps its first sample); pads ``_PAD``.

    Returns the depths, the temperatures (NaN in the padding) and the number of samples ``(rows, 1)``.
    """
    valid = np.isfinite(depth) & np.isfinite(temperature) & (depth < _PAD / 2)
    for _ in range(2):  # a second pass only where a depth repeats
        key = np.where(valid, depth, _PAD)
        order = np.argsort(key, axis=1, kind="stable")
        key, temperature, valid = (np.take_along_axis(a, order, axis=1) for a in (key, temperature, valid))
        repeated = np.zeros_like(valid)
        repeated[:, 1:] = valid[:, 1:] & (key[:, 1:] == key[:, :-1])
        if not repeated.any():
            break
        valid &= ~repeated
    return key, np.where(valid, temperature, np.nan), valid.sum(axis=1)[:, None]


def _pchip_slopes(x: np.ndarray, y: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Derivatives of the shape-preserving piecewise cubic (PCHIP) through each row's first ``count`` samples.

    Those of :class:`scipy.interpolate.PchipInterpolator` (Fritsch and Butland's weighted harmonic mean of the
    neighbouring secants, zero at a local extremum; Moler's one-sided three-point formula at the ends; the
    secant for two samples), for rows of different lengths at once. Undefined beyond each row's samples.
    """
    rows, width = x.shape
    slope = np.full((rows, width), np.nan)
    if width < 2:
        return slope
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.diff(x, axis=1)
        secant = np.diff(y, axis=1) / h
        if width > 2:
            w1, w2 = 2 * h[:, 1:] + h[:, :-1], h[:, 1:] + 2 * h[:, :-1]
            same_sign = secant[:, 1:] * secant[:, :-1] > 0  # not where either is zero (or NaN, in the padding)
            slope[:, 1:-1] = np.where(same_sign, (w1 + w2) / (w1 / secant[:, :-1] + w2 / secant[:, 1:]), 0.0)
    last = count[:, 0] - 1
    ends = np.stack([np.zeros(rows, dtype=int), np.clip(last, 0, None)], axis=1)
    inward = np.stack([np.zeros(rows, dtype=int), np.clip(last - 1, 0, None)], axis=1)  # interval at each end
    second = np.stack([np.ones(rows, dtype=int), np.clip(last - 2, 0, None)], axis=1)  # the one next to it
    take = np.minimum(width - 2, np.stack([inward, second]))
    h0, h1 = np.take_along_axis(h, take[0], axis=1), np.take_along_axis(h, take[1], axis=1)
    m0, m1 = np.take_along_axis(secant, take[0], axis=1), np.take_along_axis(secant, take[1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        edge = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    edge = np.where(np.sign(edge) != np.sign(m0), 0.0,
                    np.where((np.sign(m0) != np.sign(m1)) & (np.abs(edge) > 3 * np.abs(m0)), 3 * m0, edge))
    edge = np.where(last[:, None] >= 2, edge, m0)  # two samples: the secant at both ends
    np.put_along_axis(slope, ends, edge, axis=1)
    return slope


def _cube_parts(like: xr.Dataset | xr.DataArray) -> tuple[xr.DataArray | None, xr.Dataset]:
    """The cube's ``thetao`` (or None) and its canonical coordinates (no time for an undated cube), checked."""
    if isinstance(like, xr.DataArray):
        thetao = like
    elif isinstance(like, xr.Dataset):
        thetao = like["thetao"] if "thetao" in like.data_vars else None
    else:
        raise TypeError(f"like must be a canonical cube (xarray Dataset or DataArray), got {type(like).__name__}.")
    axes = [name for name in CANONICAL_DIMS if not (name == "time" and is_undated(like))]
    missing = [name for name in axes if name not in like.coords or like[name].ndim != 1]
    if missing:
        raise ValueError(
            f"like has no 1-D {', '.join(missing)} coordinate (only an undated cube of one time step may lack its "
            "time coordinate); pass a canonical cube (xdepthrecon.standardize(ds)) whose time, depth, latitude "
            "and longitude define the grid."
        )
    coords = xr.Dataset(coords={name: like[name] for name in axes})
    for name in ("depth", "latitude", "longitude"):
        values = np.asarray(coords[name].values, dtype="float64")
        if values.size > 1 and np.any(np.diff(values) <= 0):
            raise ValueError(f"the cube's {name} is not increasing; standardise it with xdepthrecon.standardize.")
    lon = coords["longitude"].values
    if lon.size and (lon.min() < -180 or lon.max() >= 180):
        raise ValueError("the cube's longitudes are not in [-180, 180); standardise it with xdepthrecon.standardize.")
    if thetao is not None and thetao.dims != CANONICAL_DIMS:
        raise ValueError(f"thetao has dims {thetao.dims}, not {CANONICAL_DIMS}; standardise the cube first.")
    return thetao, coords


def grid_spacing(centres: np.ndarray) -> float:
    """Typical (median) spacing of cell centres, increasing or decreasing; 1 degree for an axis of one cell."""
    return float(np.median(np.abs(np.diff(centres)))) if centres.size > 1 else _FALLBACK_CELL


def cell_halves(centres: np.ndarray, fallback: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each centre to its cell's lower and upper bounds.

    Bounds lie half-way between neighbouring centres; the outer cells extend by half their inner
    spacing. A spacing over twice the typical one (a grid split at the dateline) is not a cell:
    there the cell extends by half the typical spacing.
    """
    if centres.size == 1:
        return np.array([fallback / 2]), np.array([fallback / 2])
    spacing = np.diff(centres)
    typical = np.median(spacing)
    spacing = np.where(spacing > 2 * typical, typical, spacing)
    return np.r_[spacing[0], spacing] / 2, np.r_[spacing, spacing[-1]] / 2


def _nearest_cell(x: np.ndarray, centres: np.ndarray, fallback: float, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index of the cell holding each ``x`` and whether it lies in any cell at all."""
    x = np.asarray(x, dtype="float64")
    lower, upper = cell_halves(centres, fallback)
    if periodic:
        start = centres[0] - lower[0]
        x = start + np.mod(x - start, 360.0)
    index = np.searchsorted((centres[1:] + centres[:-1]) / 2, x)
    offset = x - centres[index]
    inside = (offset >= -lower[index] - 1e-9) & (offset <= upper[index] + 1e-9)
    return index, inside


def _cell_mean(values: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray:
    """Mean per (level, cell) of ``values (profile, level)`` in cells ``cell (profile,)``; NaN where none."""
    n_levels = values.shape[1]
    profile, level = np.nonzero(np.isfinite(values))
    flat = level * n_cells + cell[profile]
    counts = np.bincount(flat, minlength=n_levels * n_cells)
    sums = np.bincount(flat, weights=values[profile, level], minlength=n_levels * n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(values.dtype)


def _warn_left_out(counts: dict[str, int], matching: str) -> None:
    reasons = {
        "profiles_without_position": "without a latitude or longitude (NaN)",
        "profiles_outside_domain": "outside the cube's latitude/longitude grid",
        "profiles_outside_time": f"in no cube time's window ({matching})",
        "profiles_without_levels": "without a cube level inside their sampled depth range",
        "values_on_land": "values (not profiles) in cells that are land in the cube",
    }
    left_out = [f"{counts[key]} {why}" for key, why in reasons.items() if counts[key]]
    if left_out:
        warnings.warn(
            f"grid_profiles used {counts['profiles_used']} of {counts['profiles_total']} profiles; left out: "
            f"{'; '.join(left_out)} (see the attributes of the result).",
            UserWarning, stacklevel=3,
        )
