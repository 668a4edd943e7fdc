"""The background: a seasonal climatology fitted to the training data, the floor every method must beat.

Every grid cell and level gets ``T(t) = a + sum_k b_k cos(k w t) + c_k sin(k w t)``, k = 1..harmonics,
with w t the phase of the year, fitted by least squares to the training cube's values at that cell.
With ``harmonics=0`` it is the training-period mean; the default annual harmonic lets it predict months
that are missing from the training period (held-out months of an OSSE). A cell with too few training
values for the harmonics (fewer than 1 + 2 harmonics values, or values all in one season) falls back to
fewer harmonics, down to the mean. Ocean cells without any training value (held-out regions) take the
coefficients interpolated linearly from the cells around them, level by level (see
:func:`~xdepthrecon.stats.interpolation.fill_cells`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdepthrecon._provenance import describe_call
from xdepthrecon.baselines._inputs import grid_of, reconstruction, training_field, wraps
from xdepthrecon.stats.interpolation import fill_cells
from xdepthrecon.stats.seasonal import fit_seasonal, seasonal_design


def climatology(
    profiles: xr.Dataset | None = None,
    sst: xr.Dataset | None = None,
    grid: xr.Dataset | None = None,
    training: xr.Dataset | None = None,
    *,
    harmonics: int = 1,
) -> xr.Dataset:
    """The training data's seasonal climatology on the grid: the background of the other baselines.

    Parameters
    ----------
    profiles, sst
        Not used; accepted so that every baseline has the signature of an OSSE method.
    grid
        Canonical cube, or Dataset with the canonical coordinates and a boolean ``ocean``; the result
        is on its coordinates and NaN on land.
    training
        Canonical cube on the grid's depth, latitude and longitude (any times), NaN where it must not
        be used (held-out regions and times).
    harmonics
        Number of annual harmonics fitted at each cell (0: the training-period mean).

    Returns
    -------
    xarray.Dataset
        ``thetao(time, depth, latitude, longitude)`` in degC.

    Examples
    --------
    >>> background = climatology(grid=cube, training=cube.where(cube.time.dt.month != 7))  # doctest: +SKIP
    """
    if harmonics < 0:
        raise ValueError(f"harmonics ({harmonics}) must be >= 0.")
    coords, ocean = grid_of(grid, profiles)
    field = training_field(training, coords)
    coefficients = fit_seasonal_cube(field, harmonics)
    background = seasonal_on_grid(coefficients, coords, ocean)
    call = describe_call("xdepthrecon.baselines.climatology", harmonics=harmonics)
    return reconstruction(coords, background, None, "climatology", call)


def fit_seasonal_cube(field: xr.DataArray, harmonics: int) -> np.ndarray:
    """Seasonal coefficients ``(1 + 2 harmonics, depth, latitude, longitude)`` of a cube; NaN where it has no value."""
    design = seasonal_design(field["time"].values, harmonics)
    _, levels, rows, cols = field.shape
    out = np.full((design.shape[1], levels, rows, cols), np.nan)
    for level in range(levels):
        values = np.asarray(field.isel(depth=level).values, dtype="float64").reshape(field.sizes["time"], -1)
        out[:, level] = fit_seasonal(values, design).reshape(-1, rows, cols)
    return out


def seasonal_on_grid(coefficients: np.ndarray, coords: xr.Dataset, ocean: np.ndarray) -> np.ndarray:
    """The seasonal fit at the grid's times, ``(time, depth, latitude, longitude)``, NaN on land.

    Ocean cells without coefficients take them interpolated linearly from the cells that have them
    within :data:`~xdepthrecon.stats.interpolation.RING` cells (the nearest one where none is that close).
    """
    stacked = coefficients.reshape(-1, *coefficients.shape[2:])
    wanted = np.tile(ocean.any(axis=0), (coefficients.shape[0], 1, 1)) & np.isnan(stacked)
    latitude, longitude = coords["latitude"].values, coords["longitude"].values
    filled = fill_cells(stacked, wanted, latitude, longitude, periodic=wraps(coords))
    filled = np.where(wanted, filled, stacked).reshape(coefficients.shape)
    design = seasonal_design(coords["time"].values, (coefficients.shape[0] - 1) // 2)
    return np.where(ocean, np.einsum("tp,plyx->tlyx", design, filled), np.nan)
