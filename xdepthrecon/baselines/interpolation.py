"""Per-level horizontal interpolation of gridded profiles: the first thing a user would try.

Each time step and depth level is interpolated on its own, from the observed cells to every ocean cell, by
:func:`~xdepthrecon.stats.interpolation.interpolate_horizontal` (``"nearest"``, ``"inverse_distance"`` or
``"linear"``, all exact at observed cells). Land is ignored: values interpolate across it as if it were sea,
and land cells of the grid are NaN in the result.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdepthrecon._provenance import describe_call
from xdepthrecon.baselines._inputs import grid_of, gridded_observations, reconstruction, wraps
from xdepthrecon.stats.interpolation import METHODS, interpolate_horizontal


def interpolate(
    profiles: xr.Dataset,
    sst: xr.Dataset | None = None,
    grid: xr.Dataset | None = None,
    training: xr.Dataset | None = None,
    *,
    method: str = "linear",
    neighbours: int = 8,
    power: float = 2.0,
    window: str = "7D",
) -> xr.Dataset:
    """Interpolate gridded profiles horizontally, level by level and time by time.

    Parameters
    ----------
    profiles
        Canonical profiles (gridded here with :func:`xdepthrecon.grid_profiles` and ``window``) or
        their gridding on ``grid`` (a Dataset with ``x``).
    sst, training
        Not used; accepted so that every baseline has the signature of an OSSE method.
    grid
        Canonical cube, or Dataset with the canonical coordinates and a boolean ``ocean``; the result
        is on its coordinates and NaN where it is land. None takes the gridded profiles' grid, all ocean.
    method
        ``"linear"``, ``"nearest"`` or ``"inverse_distance"`` (see
        :func:`~xdepthrecon.stats.interpolation.interpolate_horizontal`).
    neighbours, power
        Number of observations and distance exponent of ``"inverse_distance"``.
    window
        Time window for gridding canonical profiles.

    Returns
    -------
    xarray.Dataset
        ``thetao(time, depth, latitude, longitude)`` in degC; NaN on land and at levels and times
        without any observation.

    Examples
    --------
    >>> rec = interpolate(profiles, grid=cube, method="nearest")  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}.")
    if neighbours < 1 or power <= 0:
        raise ValueError(f"neighbours ({neighbours}) must be >= 1 and power ({power}) > 0.")
    coords, ocean = grid_of(grid, profiles)
    x = gridded_observations(profiles, coords, ocean, window)
    lat, lon = coords["latitude"].values, coords["longitude"].values
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        out[t] = interpolate_horizontal(x[t], ocean[t], lat, lon, method=method, neighbours=neighbours, power=power,
                                        periodic=wraps(coords))
    call = describe_call("xdepthrecon.baselines.interpolate", method=method,
                         neighbours=neighbours if method == "inverse_distance" else None,
                         power=power if method == "inverse_distance" else None)
    return reconstruction(coords, out, None, f"{method} interpolation", call)
