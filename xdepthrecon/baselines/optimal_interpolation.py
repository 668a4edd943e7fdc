"""Objective analysis (optimal interpolation): Gaussian-process regression per level, fitted to the data.

At each depth level the anomalies of the observations from a background (by default the training
data's seasonal :func:`~xdepthrecon.baselines.climatology`) are modelled as a zero-mean Gaussian
process in the horizontal, independent between time steps, plus white noise, with a covariance fitted
to them by composite likelihood (:mod:`xdepthrecon.stats.covariance`, which describes the model, the fit
and the prediction). **Prediction** is local: the grid is cut into ``tile`` x ``tile`` cells, and each
tile is predicted from the ``neighbours`` observations (of its time step and level) nearest to its
centre. The posterior standard deviation is that of the signal plus the nugget: the spread of the truth
around the mean, small near observations and the prior's far from them. By default both variances are
rescaled in each tile to the anomalies of its neighbours (:func:`~xdepthrecon.stats.covariance.predict`),
so that the std is larger where the background is worse (held-out regions, held-out months). Land
barriers are ignored.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdepthrecon._provenance import describe_call
from xdepthrecon.baselines._inputs import cell_vectors, grid_of, gridded_observations, reconstruction
from xdepthrecon.baselines.climatology import climatology
from xdepthrecon.io.cube import CANONICAL_DIMS
from xdepthrecon.stats.covariance import KERNELS, fit_levels, predict, tile_labels


def optimal_interpolation(
    profiles: xr.Dataset,
    sst: xr.Dataset | None = None,
    grid: xr.Dataset | None = None,
    training: xr.Dataset | None = None,
    *,
    background: xr.Dataset | xr.DataArray | None = None,
    kernel: str = "matern32",
    neighbours: int = 32,
    tile: int = 8,
    max_blocks: int = 16,
    local_variance: bool = True,
    seed: int = 0,
    window: str = "7D",
) -> xr.Dataset:
    """Objective analysis of the observations about a background, with fitted covariances (see the module).

    Parameters
    ----------
    profiles
        Canonical profiles (gridded here with ``window``) or their gridding on ``grid`` (``x``).
    sst
        Not used; accepted so that every baseline has the signature of an OSSE method.
    grid
        Canonical cube, or Dataset with the canonical coordinates and a boolean ``ocean``.
    training
        Training cube for the default background, :func:`~xdepthrecon.baselines.climatology`.
    background
        The background (``thetao`` on the grid, Dataset or DataArray). Default: the climatology of
        ``training``; without training, the mean of the observations of each level.
    kernel
        ``"matern32"``, ``"exponential"`` or ``"gaussian"``.
    neighbours
        Observations used for each tile.
    tile
        Side (cells) of the square tiles that share their observations.
    max_blocks
        Number of blocks of the composite likelihood of the fit (each of at most 200 observations; see
        :func:`~xdepthrecon.stats.covariance.fit_covariance`).
    local_variance
        Scale each tile's variances to its neighbours' anomalies (see
        :func:`~xdepthrecon.stats.covariance.predict`), so that the
        std follows regional and seasonal changes of the background's error; False uses the fitted
        variances everywhere.
    seed
        Seed of the random block centres.
    window
        Time window for gridding canonical profiles.

    Returns
    -------
    xarray.Dataset
        ``thetao`` and ``thetao_std`` (degC) on the grid, NaN on land, and per depth the fitted
        ``length_scale`` (km), ``signal_std`` and ``noise_std`` (degC).

    Examples
    --------
    >>> analysis = optimal_interpolation(profiles, grid=cube, training=train)  # doctest: +SKIP
    >>> analysis.length_scale.to_series()  # doctest: +SKIP
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r} is not one of {tuple(KERNELS)}.")
    if neighbours < 1 or tile < 1 or max_blocks < 1:
        raise ValueError("neighbours, tile and max_blocks must be >= 1.")
    coords, ocean = grid_of(grid, profiles)
    x = gridded_observations(profiles, coords, ocean, window)
    prior = _background(background, x, coords, ocean, training)
    anomaly = x - prior
    vectors = cell_vectors(coords)
    rng = np.random.default_rng(seed)
    fields = anomaly.reshape(*anomaly.shape[:2], -1)
    fits = fit_levels([vectors] * len(fields), list(fields), kernel, max_blocks=max_blocks, rng=rng)

    mean, std = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    rows, cols = x.shape[2:]
    tiles = tile_labels(rows, cols, tile)
    for level, cov in enumerate(fits):
        for t in range(x.shape[0]):
            targets = np.flatnonzero(ocean[t, level].ravel())
            if targets.size == 0:
                continue
            values = anomaly[t, level].ravel()
            known = np.flatnonzero(np.isfinite(values))
            m, v = predict(vectors[known], values[known], vectors[targets], tiles[targets], cov=cov,
                           neighbours=neighbours, local_variance=local_variance)
            mean[t, level].flat[targets], std[t, level].flat[targets] = m, np.sqrt(v)
    extra = {
        "length_scale": ("depth", [c.length_scale for c in fits], {"long_name": "fitted length scale", "units": "km"}),
        "signal_std": ("depth", [np.sqrt(c.signal_variance) for c in fits],
                       {"long_name": "fitted standard deviation of the anomaly signal", "units": "degC"}),
        "noise_std": ("depth", [np.sqrt(c.noise_variance) for c in fits],
                      {"long_name": "fitted noise (nugget) standard deviation", "units": "degC"}),
    }
    call = describe_call("xdepthrecon.baselines.optimal_interpolation", kernel=kernel, neighbours=neighbours,
                         tile=tile, max_blocks=max_blocks, local_variance=local_variance, seed=seed,
                         background="given" if background is not None else None)
    extra = {name: xr.DataArray(values, dims=dims, coords={"depth": coords["depth"].values}, attrs=attrs)
             for name, (dims, values, attrs) in extra.items()}
    return reconstruction(coords, prior + mean, std, f"optimal interpolation ({kernel})", call, extra)


def _background(background, x: np.ndarray, coords: xr.Dataset, ocean: np.ndarray, training) -> np.ndarray:
    """The background ``(time, depth, latitude, longitude)`` as numpy, NaN on land."""
    if background is None and training is not None:
        background = climatology(grid=xr.Dataset({"ocean": (CANONICAL_DIMS, ocean)}, coords=coords.coords),
                                 training=training)
    if background is None:
        level_mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=(0, 2, 3))
        return np.where(ocean, level_mean[None, :, None, None], np.nan)
    field = background["thetao"] if isinstance(background, xr.Dataset) else background
    values = np.asarray(field.transpose("time", "depth", "latitude", "longitude").values, dtype="float64")
    if values.shape != x.shape:
        raise ValueError(f"the background has shape {values.shape}, the grid {x.shape}; put it on the grid first.")
    return np.where(ocean, values, np.nan)
