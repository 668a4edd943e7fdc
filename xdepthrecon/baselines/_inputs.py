"""What every mapping baseline takes and gives: observations on a grid, the ocean, positions on the sphere.

The baselines share one signature, ``method(profiles, sst=None, grid=None, training=None, **options)``
(the methods of :mod:`xdepthrecon.evaluation.osse`). This module turns those arguments into plain numpy arrays on
the grid and the results back into a reconstruction Dataset.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdepthrecon._provenance import with_history
from xdepthrecon.io.cube import CANONICAL_DIMS, is_global
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.io.profiles import is_canonical
from xdepthrecon.stats.geometry import unit_vectors


def grid_of(grid: xr.Dataset | xr.DataArray | None,
            observations: xr.Dataset | None) -> tuple[xr.Dataset, np.ndarray]:
    """The target coordinates and the ocean mask ``(time, depth, latitude, longitude)`` as numpy booleans.

    ``grid`` is a Dataset with the canonical coordinates and a boolean ``ocean`` variable, or a
    cube whose ``thetao`` NaNs mark land, or None to take the coordinates of gridded observations
    (every cell counts as ocean then).
    """
    if grid is None:
        if observations is None or "x" not in observations:
            raise ValueError("grid is None but the observations are not gridded; pass grid= (a cube, or a Dataset "
                             "with time, depth, latitude, longitude coordinates and a boolean 'ocean').")
        grid = observations
    if isinstance(grid, xr.DataArray):
        grid = grid.to_dataset(name="thetao")
    missing = [d for d in CANONICAL_DIMS if d not in grid.coords or grid[d].ndim != 1]
    if missing:
        raise ValueError(f"grid has no 1-D {', '.join(missing)} coordinate; pass a canonical cube or a Dataset "
                         "with time, depth, latitude and longitude coordinates.")
    coords = xr.Dataset(coords={d: grid[d] for d in CANONICAL_DIMS})
    shape = tuple(coords.sizes[d] for d in CANONICAL_DIMS)
    if "ocean" in grid:
        ocean = grid["ocean"]
        if ocean.dtype != bool:
            raise TypeError(f"grid['ocean'] must be boolean (True over the ocean), got {ocean.dtype}.")
    elif "thetao" in grid:
        ocean = grid["thetao"].notnull()
    else:
        return coords, np.ones(shape, dtype=bool)
    ocean = ocean.broadcast_like(coords).transpose(*CANONICAL_DIMS)
    return coords, np.asarray(ocean.values, dtype=bool)


def gridded_observations(observations: xr.Dataset, coords: xr.Dataset, ocean: np.ndarray,
                         window: str = "7D") -> np.ndarray:
    """Observed values ``(time, depth, latitude, longitude)`` on the grid, NaN where unobserved or on land.

    Canonical profiles are gridded with :func:`xdepthrecon.grid_profiles` (``window``); gridded
    observations (``x``, as that function returns) must be on the grid's coordinates already.
    """
    if is_canonical(observations):
        observations = grid_profiles(observations, like=coords, window=window, mask_land=False)
    if not isinstance(observations, xr.Dataset) or "x" not in observations:
        raise ValueError("observations must be canonical profiles (xdepthrecon.read_profiles / sample_profiles) or "
                         "their gridding with an 'x' variable (xdepthrecon.grid_profiles).")
    x = observations["x"]
    for dim in CANONICAL_DIMS:
        if dim not in x.dims or x.sizes[dim] != coords.sizes[dim] or not np.array_equal(
                np.asarray(x[dim].values), np.asarray(coords[dim].values)):
            raise ValueError(f"the gridded observations' {dim} differs from the grid's; grid the profiles onto this "
                             "grid (xdepthrecon.grid_profiles(profiles, like=grid)) or pass the profiles themselves.")
    values = np.asarray(x.transpose(*CANONICAL_DIMS).values, dtype="float64")
    return np.where(ocean, values, np.nan)


def training_field(training: xr.Dataset | xr.DataArray | None, coords: xr.Dataset) -> xr.DataArray:
    """The training cube's ``thetao`` on the grid's depth, latitude and longitude (its own times)."""
    if training is None:
        raise ValueError("this baseline learns from training data: pass training= (a canonical cube of the "
                         "truth or a reanalysis, NaN where it must not be used).")
    field = training["thetao"] if isinstance(training, xr.Dataset) else training
    if field.dims != CANONICAL_DIMS:
        raise ValueError(f"training has dims {field.dims}, not {CANONICAL_DIMS}; standardise it first.")
    for dim in ("depth", "latitude", "longitude"):
        if not np.allclose(field[dim].values, coords[dim].values):
            raise ValueError(f"training's {dim} differs from the grid's; put it on the grid first (e.g. interp_like).")
    return field


def cell_vectors(coords: xr.Dataset) -> np.ndarray:
    """Unit vectors ``(latitude * longitude, 3)`` of the grid cells, row-major."""
    lat, lon = np.meshgrid(coords["latitude"].values, coords["longitude"].values, indexing="ij")
    return unit_vectors(lat.ravel(), lon.ravel())


def wraps(coords: xr.Dataset) -> bool:
    """Whether the grid's longitude spans the circle."""
    return is_global(np.asarray(coords["longitude"].values))


def reconstruction(coords: xr.Dataset, thetao: np.ndarray, std: np.ndarray | None, method: str, call: str,
                   extra: dict[str, xr.DataArray] | None = None) -> xr.Dataset:
    """A reconstruction Dataset: ``thetao`` (and ``thetao_std``) in degC on the grid, with attrs and history."""
    data = {"thetao": (CANONICAL_DIMS, thetao.astype("float32"),
                       {"standard_name": "sea_water_potential_temperature", "long_name": f"temperature ({method})",
                        "units": "degC"})}
    if std is not None:
        data["thetao_std"] = (CANONICAL_DIMS, std.astype("float32"),
                              {"long_name": f"standard deviation of the temperature ({method})", "units": "degC"})
    out = xr.Dataset(data, coords={d: coords[d].variable for d in CANONICAL_DIMS})
    for name, value in (extra or {}).items():
        out[name] = value
    out.attrs = with_history({"title": f"temperature reconstructed by the {method} baseline", "method": method}, call)
    return out
