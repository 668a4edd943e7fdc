"""SST-informed regression: the surface anomaly projected downward, then the profiles' objective analysis.

The background is ``climatology(t, z, cell) + beta(z, latitude band) * SST'(t, cell)``:

- ``climatology`` is the training data's seasonal fit (:func:`~xdepthrecon.baselines.climatology`);
- ``SST'`` is the SST minus its own background, built exactly as the temperature's: the seasonal fit
  of the SST at the training cells and times, interpolated into the cells without training data. In
  held-out regions ``SST'`` therefore also holds the surface structure that the interpolated
  climatology misses, and the regression carries it down. ``SST'`` is 0 where the SST is missing;
- ``beta`` is the least-squares slope, without intercept, of the training data's anomalies from their
  seasonal fit on ``SST'``, pooled over the training cells and times of each level and latitude band of
  ``band`` degrees (a band with fewer than ``min_pairs`` pairs takes the level's global slope, and a
  level without any pairs 0). Cells with no more training times than regressors give no pairs.

With ``analysis=True`` (default) the profiles are then analysed about that background by
:func:`~xdepthrecon.baselines.optimal_interpolation`, which also gives the posterior std. Where clouds hide the
SST of an ocean cell, the background there is the climatology and a profile's departure from it is the whole
anomaly, not the small one the regression leaves: those cells are analysed about the climatology from every
profile (the OI baseline), and the cells with SST from the profiles that have it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.baselines._inputs import grid_of, gridded_observations, reconstruction, training_field
from xdepthrecon.baselines.climatology import fit_seasonal_cube, seasonal_on_grid
from xdepthrecon.baselines.optimal_interpolation import optimal_interpolation
from xdepthrecon.io.cube import CANONICAL_DIMS
from xdepthrecon.io.sst import align_sst
from xdepthrecon.stats.regression import MIN_PAIRS, level_slopes
from xdepthrecon.stats.seasonal import fit_seasonal, seasonal_design


def sst_regression(
    profiles: xr.Dataset,
    sst: xr.Dataset,
    grid: xr.Dataset | None = None,
    training: xr.Dataset | None = None,
    *,
    harmonics: int = 1,
    band: float = 10.0,
    min_pairs: int = MIN_PAIRS,
    analysis: bool = True,
    **options,
) -> xr.Dataset:
    """Climatology plus the SST anomaly projected downward, then (``analysis``) OI of the profiles about it.

    Parameters
    ----------
    profiles
        Canonical profiles or their gridding on ``grid`` (``x``); used only with ``analysis``.
    sst
        SST, ``sst(time, latitude, longitude)`` on the grid, or anything :func:`xdepthrecon.align_sst`
        puts there; it must cover the grid's and the training data's times.
    grid
        Canonical cube, or Dataset with the canonical coordinates and a boolean ``ocean``.
    training
        Canonical cube on the grid's depth, latitude and longitude, NaN where it must not be used.
    harmonics
        Annual harmonics of the seasonal fits of the temperature and the SST.
    band
        Width (degrees of latitude) of the bands that share a slope.
    min_pairs
        Fewest pairs for a band's own slope.
    analysis
        Analyse the profiles about the regressed background (returns ``thetao_std`` too).
    **options
        Passed to :func:`~xdepthrecon.baselines.optimal_interpolation` (``kernel``, ``neighbours``, ...).

    Returns
    -------
    xarray.Dataset
        ``thetao`` (and with ``analysis``, ``thetao_std`` and the fitted covariances) on the grid, and
        ``sst_coefficient(depth, latitude)``, the slope applied at each level and latitude.

    Examples
    --------
    >>> rec = sst_regression(profiles, sst, grid=cube, training=train)  # doctest: +SKIP
    """
    if band <= 0:
        raise ValueError(f"band ({band}) must be a positive width in degrees of latitude.")
    coords, ocean = grid_of(grid, profiles)
    field = training_field(training, coords)
    used = np.asarray(field.notnull().any(("depth", "latitude", "longitude")).values)
    field = field.isel(time=np.flatnonzero(used))
    coefficients = fit_seasonal_cube(field, harmonics)
    climate = seasonal_on_grid(coefficients, coords, ocean)

    design = seasonal_design(field.time.values, harmonics)
    surface = np.asarray(field.isel(depth=0).notnull().values)
    sst_train = np.where(surface, _sst_values(sst, field), np.nan)
    sst_coefficients = fit_seasonal(sst_train.reshape(sst_train.shape[0], -1), design)
    train_anomaly = sst_train - (design @ sst_coefficients).reshape(sst_train.shape)
    sst_background = seasonal_on_grid(sst_coefficients.reshape(-1, 1, *surface.shape[1:]), coords, ocean[:, :1])
    grid_anomaly = np.nan_to_num(_sst_values(sst, coords) - sst_background[:, 0])

    latitude = coords["latitude"].values
    slope = np.zeros((coords.sizes["depth"], latitude.size))
    for level in range(coords.sizes["depth"]):
        values = np.asarray(field.isel(depth=level).values, dtype="float64")
        slope[level] = level_slopes(values, coefficients[:, level], design, train_anomaly[..., None],
                                    latitude=latitude, band=band, min_pairs=min_pairs)[0]
    background = climate + slope[None, :, :, None] * grid_anomaly[:, None]

    coefficient = xr.DataArray(slope, dims=("depth", "latitude"),
                               coords={"depth": coords["depth"].values, "latitude": latitude},
                               attrs={"long_name": "slope of the temperature anomaly on the SST anomaly", "units": "1"})
    call = describe_call("xdepthrecon.baselines.sst_regression", harmonics=harmonics, band=band, analysis=analysis)
    if analysis:
        gaps = np.isnan(_sst_values(sst, coords)) & ocean.any(axis=1)
        out = _analysed(profiles, coords, ocean, background, climate, gaps, options)
        out["sst_coefficient"] = coefficient
        out.attrs = with_history({**out.attrs, "method": "sst regression + optimal interpolation",
                                  "title": "temperature reconstructed by SST regression and optimal interpolation"},
                                 call)
        return out
    return reconstruction(coords, background, None, "sst regression", call, {"sst_coefficient": coefficient})


def _analysed(profiles: xr.Dataset, coords: xr.Dataset, ocean: np.ndarray, background: np.ndarray,
              climate: np.ndarray, gaps: np.ndarray, options: dict) -> xr.Dataset:
    """OI of the profiles about ``background``; where ``gaps`` (time, latitude, longitude) hide the SST, OI of every
    profile about ``climate`` instead, and the profiles there left out of the analysis of the cells with SST."""
    on_grid = xr.Dataset({"ocean": (CANONICAL_DIMS, ocean)}, coords=coords.coords)
    as_field = lambda values: xr.DataArray(values, dims=CANONICAL_DIMS, coords=coords.coords)  # noqa: E731
    if not gaps.any():
        return optimal_interpolation(profiles, grid=on_grid, background=as_field(background), **options)
    x = gridded_observations(profiles, coords, ocean, options.get("window", "7D"))
    clear = xr.Dataset({"x": as_field(np.where(gaps[:, None], np.nan, x))})
    out = optimal_interpolation(clear, grid=on_grid, background=as_field(background), **options)
    under = optimal_interpolation(xr.Dataset({"x": as_field(x)}), grid=on_grid, background=as_field(climate),
                                  **options)
    where = np.broadcast_to(gaps[:, None], x.shape)
    for name in ("thetao", "thetao_std"):
        out[name] = out[name].where(~where, under[name])
    return out


def _sst_values(sst: xr.Dataset | xr.DataArray, like: xr.Dataset | xr.DataArray) -> np.ndarray:
    """The SST ``(time, latitude, longitude)`` at ``like``'s times and cells (aligned unless it already is)."""
    field = sst["sst"] if isinstance(sst, xr.Dataset) and "sst" in sst else sst
    same = isinstance(field, xr.DataArray) and all(
        d in field.dims and field.sizes[d] == like.sizes[d] and np.array_equal(field[d].values, like[d].values)
        for d in ("time", "latitude", "longitude"))
    if not same:
        field = align_sst(sst, like=like).sst
    return np.asarray(field.transpose("time", "latitude", "longitude").values, dtype="float64")
