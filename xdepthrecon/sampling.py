"""Observing-system simulation: sample profiles from a truth cube as an observing system would.

The sampled profiles are canonical profiles (see :mod:`xdepthrecon.io.profiles`) read from the truth
at its own levels, columns and times, so that :func:`xdepthrecon.grid_profiles` on the truth's grid
gives back the truth exactly where they were taken (with ``noise=0`` and a time window shorter than
the truth's time step).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import CANONICAL_DIMS, is_undated
from xdepthrecon.gridding import cell_halves, grid_spacing
from xdepthrecon.io.times import as_profile_times
from xdepthrecon.io.profiles import profiles_dataset
from xdepthrecon.stats.geometry import EARTH_RADIUS_KM

#: Side (cells) of the square tile that ``per_tile`` counts profiles in, as in DepthDif's 128x128 patches.
TILE_SIZE = 128


def sample_profiles(
    truth: xr.Dataset | xr.DataArray,
    *,
    density: float | None = None,
    per_tile: float | None = None,
    fraction: float | None = None,
    depth_max: float | None = None,
    noise: float = 0.0,
    seed: int | None = 0,
    generator: np.random.Generator | None = None,
    tile_size: int = TILE_SIZE,
) -> xr.Dataset:
    """Simulate profiles observed in a truth cube (observing-system simulation, OSSE).

    At every time step, ocean columns (where the top level of ``thetao`` is not NaN) are picked
    at random without replacement, and each is read at all cube levels down to ``depth_max``,
    with Gaussian noise added. The number of profiles per time step is the expected number
    rounded up or down at random (so its mean is exact):

    - ``density``: profiles per 10^6 km^2 of ocean per time step; columns are picked with
      probability proportional to their cell area, so the density holds per area at every latitude.
      Argo's ~4000 profiles every 10 days over 3.6 x 10^8 km^2 of ocean are about 1.1 per 10^6 km^2 per day.
    - ``per_tile``: profiles per ``tile_size`` x ``tile_size`` ocean cells per time step, columns
      picked uniformly (DepthDif's data have about 15 per 128 x 128 tile of 0.1 deg per week).
    - ``fraction``: the share of the ocean columns profiled per time step (0.01: 1 %), columns picked
      uniformly.

    Parameters
    ----------
    truth
        Canonical cube (see :func:`xdepthrecon.standardize`), or its ``thetao``; it may be undated
        (one time step without a time coordinate, see :func:`xdepthrecon.io.cube.is_undated`).
    density, per_tile, fraction
        Sampling rate; give exactly one of them.
    depth_max
        Deepest level kept (m); Argo floats reach about 2000 m. None keeps all levels.
    noise
        Standard deviation (degC) of the Gaussian measurement noise.
    seed
        Seed of the numpy random generator; the same seed gives the same profiles.
    generator
        A numpy Generator to draw from instead of ``seed``.
    tile_size
        Tile side (cells) for ``per_tile``.

    Returns
    -------
    xarray.Dataset
        Canonical profiles with ``time`` the cube time of each (for a climatological cube with
        cftime year-0 dates: the same month, day and time in the leap year 2000; NaT for an undated
        cube, whose profiles :func:`xdepthrecon.grid_profiles` grids back onto it), at the centres of
        the picked cells, and attributes naming the sampling (``osse_*``) and a ``history`` line.

    Examples
    --------
    >>> obs = xdepthrecon.sample_profiles(truth, per_tile=15, depth_max=2000, seed=0)  # doctest: +SKIP
    >>> x = xdepthrecon.grid_profiles(obs, like=truth, window="1D")  # doctest: +SKIP
    """
    call = describe_call("xdepthrecon.sample_profiles", density=density, per_tile=per_tile, fraction=fraction,
                         depth_max=depth_max, noise=noise, seed=seed if generator is None else None,
                         tile_size=tile_size)
    thetao = _truth_field(truth)
    if sum(rate is not None for rate in (density, per_tile, fraction)) != 1:
        raise ValueError("pass exactly one of density= (profiles per 10^6 km^2 per time step), per_tile= "
                         f"(profiles per {tile_size}x{tile_size} ocean cells per time step) or fraction= (the share "
                         "of ocean columns profiled per time step).")
    if fraction is not None and not 0 <= fraction <= 1:
        raise ValueError(f"fraction ({fraction}) is the share of ocean columns profiled: between 0 and 1 "
                         "(0.01 is 1 %).")
    per_tile = fraction * tile_size**2 if fraction is not None else per_tile
    rate = density if density is not None else per_tile
    if not np.isfinite(rate) or rate < 0 or noise < 0 or tile_size < 1:
        raise ValueError(f"density/per_tile ({rate}), noise ({noise}) must be >= 0 and tile_size ({tile_size}) >= 1.")
    rng = generator if generator is not None else np.random.default_rng(seed)
    levels = np.asarray(thetao["depth"].values, dtype="float64")
    level_index = np.flatnonzero(levels <= depth_max) if depth_max is not None else np.arange(levels.size)
    lat = np.asarray(thetao["latitude"].values, dtype="float64")
    lon = np.asarray(thetao["longitude"].values, dtype="float64")
    area = _cell_areas(lat, lon).ravel()
    if is_undated(thetao):
        times = np.full(1, np.datetime64("NaT", "ns"))
    else:
        times, _ = as_profile_times(thetao["time"].values)

    columns, cells, steps = [], [], []
    any_ocean = False
    for t in range(thetao.sizes["time"]):
        ocean = np.flatnonzero(np.isfinite(np.asarray(thetao.isel(time=t, depth=0).values)).ravel())
        any_ocean = any_ocean or ocean.size > 0
        weights = area[ocean] if density is not None else None
        expected = rate * (weights.sum() / 1e6 if weights is not None else ocean.size / tile_size**2)
        n = int(np.floor(expected)) + int(rng.random() < expected - np.floor(expected))
        if n > ocean.size:
            warnings.warn(f"time step {t}: the rate asks for {n} profiles but there are only {ocean.size} ocean "
                          "columns; sampling all of them.", UserWarning, stacklevel=2)
            n = ocean.size
        if n == 0 or level_index.size == 0:
            continue
        probabilities = weights / weights.sum() if weights is not None else None
        chosen = np.sort(rng.choice(ocean, size=n, replace=False, p=probabilities))
        rows, cols = np.divmod(chosen, lon.size)
        column = thetao.isel(time=t, depth=level_index, latitude=xr.DataArray(rows, dims="profile"),
                             longitude=xr.DataArray(cols, dims="profile"))
        columns.append(np.asarray(column.transpose("profile", "depth").values))
        cells.append((rows, cols))
        steps.append(np.full(n, t))

    if not any_ocean and thetao.size:
        raise ValueError(f"the top level ({levels[0]:g} m) of truth is NaN at every time step, and ocean columns are "
                         "those holding a value there: there is nothing to sample. Select the levels that hold data "
                         "(e.g. truth.isel(depth=slice(1, None))) or check the fill value.")
    dtype = thetao.dtype if np.issubdtype(thetao.dtype, np.floating) else np.dtype("float32")
    temperature = np.concatenate(columns) if columns else np.empty((0, level_index.size), dtype=dtype)
    if noise > 0:
        temperature = temperature + rng.normal(0.0, noise, temperature.shape)
    temperature = temperature.astype(dtype)
    valid = np.isfinite(temperature)
    order = np.argsort(~valid, axis=1, kind="stable")
    temperature, valid = np.take_along_axis(temperature, order, axis=1), np.take_along_axis(valid, order, axis=1)
    depth = np.where(valid, np.take(levels[level_index], order), np.nan)
    n_levels = int(valid.sum(axis=1).max(initial=0))
    rows = np.concatenate([r for r, _ in cells]) if cells else np.empty(0, dtype=int)
    cols = np.concatenate([c for _, c in cells]) if cells else np.empty(0, dtype=int)
    step = np.concatenate(steps) if steps else np.empty(0, dtype=int)

    history = {"history": truth.attrs["history"]} if "history" in truth.attrs else {}
    attrs = with_history(history, call)
    attrs.update(source="xdepthrecon.sample_profiles: observing-system simulation from a truth cube",
                 osse_noise=float(noise))
    if generator is None and seed is not None:
        attrs["osse_seed"] = int(seed)
    attrs["osse_density" if density is not None else "osse_per_tile"] = float(rate)
    if depth_max is not None:
        attrs["osse_depth_max"] = float(depth_max)
    standard_name = thetao.attrs.get("standard_name", "sea_water_potential_temperature")
    return profiles_dataset(temperature[:, :n_levels], depth[:, :n_levels], lat[rows], lon[cols], time=times[step],
                            standard_name=standard_name, attrs=attrs)


def _truth_field(truth: xr.Dataset | xr.DataArray) -> xr.DataArray:
    if isinstance(truth, xr.Dataset):
        if "thetao" not in truth.data_vars:
            raise ValueError("truth has no thetao variable; pass a canonical cube (xdepthrecon.standardize(ds)).")
        truth = truth["thetao"]
    if not isinstance(truth, xr.DataArray):
        raise TypeError(f"truth must be a canonical cube (xarray Dataset or DataArray), got {type(truth).__name__}.")
    if truth.dims != CANONICAL_DIMS:
        raise ValueError(f"truth has dims {truth.dims}, not {CANONICAL_DIMS}; standardise it with "
                         "xdepthrecon.standardize first.")
    empty = [name for name in CANONICAL_DIMS if truth.sizes[name] == 0]
    if empty:
        raise ValueError(f"truth has no {' and no '.join(empty)} values (an empty selection); there is nothing to "
                         "sample: check the selection against the cube's coordinates.")
    needed = [name for name in CANONICAL_DIMS if not (name == "time" and is_undated(truth))]
    missing = [name for name in needed if name not in truth.coords]
    if missing:
        raise ValueError(f"truth has no {', '.join(missing)} coordinate (only an undated cube of one time step may "
                         "lack its time coordinate); standardise it with xdepthrecon.standardize, or assign the "
                         f"coordinates with truth.assign_coords({missing[0]}=...).")
    return truth


def _cell_areas(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Area (km^2) of each grid cell ``(latitude, longitude)`` on a sphere, with the gridding's cell bounds."""
    lat_lower, lat_upper = cell_halves(lat, grid_spacing(lon))
    lon_lower, lon_upper = cell_halves(lon, grid_spacing(lat))
    south = np.deg2rad(np.clip(lat - lat_lower, -90.0, 90.0))
    north = np.deg2rad(np.clip(lat + lat_upper, -90.0, 90.0))
    width = np.deg2rad(lon_lower + lon_upper)
    return EARTH_RADIUS_KM**2 * (np.sin(north) - np.sin(south))[:, None] * width[None, :]
