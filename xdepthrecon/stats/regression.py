"""Regression of a level's departures from its seasonal fit on the SST anomaly (or its scale bands), pooled by
latitude band; the slopes may vary with the time of year (each regressor also multiplied by the seasonal
harmonics)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Fewest (anomaly, SST anomaly) pairs for a latitude band to get its own slope.
MIN_PAIRS = 100
#: Ridge of the slopes of the SST anomaly's scale bands, as a fraction of their mean power.
RIDGE = 1e-3
#: Ridges a background chooses from by cross-validation over time (inf: one slope for all scale bands).
RIDGES = (1e-3, 1e-2, 1e-1, 1.0, float("inf"))


class NormalEquations(NamedTuple):
    """Sums of one level's regression on the SST anomaly's scale bands, per latitude row: ``gram (lat, k, k)``,
    ``cross (lat, k)`` and the number of pairs ``pairs (lat,)``."""

    gram: np.ndarray
    cross: np.ndarray
    pairs: np.ndarray


def level_residual(values: np.ndarray, coefficients: np.ndarray, design: np.ndarray) -> np.ndarray:
    """One level's departure ``(time, lat, lon)`` from its seasonal fit: ``values (time, lat, lon)`` less
    ``coefficients (regressor, lat, lon)`` on ``design (time, regressor)``; NaN in cells with no more values
    than regressors (an exact fit leaves no residual)."""
    residual = values - np.einsum("tp,pyx->tyx", design, coefficients)
    residual[:, np.isfinite(values).sum(axis=0) <= design.shape[1]] = np.nan
    return residual


def normal_equations(residual: np.ndarray, sst_anomaly: np.ndarray,
                     season: np.ndarray | None = None) -> NormalEquations:
    """The sums of the regression of ``residual (time, lat, lon)`` on ``sst_anomaly (time, lat, lon, band)``
    (its scale bands, :func:`~xdepthrecon.stats.scales.scale_bands`; one band: the anomaly itself) over the
    times and cells where both are finite.

    ``season (time, s)``: each band also multiplied by each of these time series (the seasonal design,
    :func:`~xdepthrecon.stats.seasonal.seasonal_design`, for slopes that vary with the time of year); the
    regressors are then ordered (season term, band), ``s`` groups of the bands. None: the bands alone.
    """
    valid = np.isfinite(residual) & np.isfinite(sst_anomaly).all(axis=-1)
    regressors = np.where(valid[..., None], sst_anomaly, 0.0)
    residual = np.where(valid, residual, 0.0)
    per_time = np.matmul(regressors.transpose(0, 1, 3, 2), regressors)  # (time, lat, band, band)
    cross = np.matmul(regressors.transpose(0, 1, 3, 2), residual[..., None])[..., 0]  # (time, lat, band)
    if season is None:
        return NormalEquations(per_time.sum(axis=0), cross.sum(axis=0), valid.sum(axis=(0, 2)))
    rows, bands, terms = residual.shape[1], sst_anomaly.shape[-1], season.shape[1]
    gram = np.einsum("tm,tn,tykl->ymknl", season, season, per_time).reshape(rows, terms * bands, terms * bands)
    return NormalEquations(gram, np.einsum("tm,tyk->ymk", season, cross).reshape(rows, terms * bands),
                           valid.sum(axis=(0, 2)))


def pooled_slopes(sums: NormalEquations, *, latitude: np.ndarray, band: float, min_pairs: int = MIN_PAIRS,
                  ridge: float = RIDGE, groups: int = 1) -> np.ndarray:
    """Slopes ``(regressor, lat)`` of one level on the SST anomaly's scale bands, pooled per latitude band.

    The slopes (one per scale band, without intercept) solve ``sums`` pooled over the rows of each latitude
    band of ``band`` degrees of ``latitude (lat,)``, with a ridge of ``ridge`` times the mean power of the
    scale bands towards one common slope for all of them (a scale band the data hardly hold takes the common
    slope; ``ridge=inf``: the common slope alone). With ``groups`` groups of bands (the season terms of
    :func:`normal_equations`), each group is drawn towards its own common slope. A latitude band with fewer
    than ``min_pairs`` pairs takes the level's overall slopes, and a level without any pair 0.
    """
    overall = _ridge_slopes(sums.gram.sum(axis=0), sums.cross.sum(axis=0), ridge, groups)
    slope = np.repeat(overall[:, None], latitude.size, axis=1)
    bands = np.floor((latitude + 90.0) / band).astype(int)
    for label in np.unique(bands):
        rows = bands == label
        if sums.pairs[rows].sum() >= min_pairs and np.trace(sums.gram[rows].sum(axis=0)) > 0:
            slope[:, rows] = _ridge_slopes(sums.gram[rows].sum(axis=0), sums.cross[rows].sum(axis=0), ridge,
                                           groups)[:, None]
    return slope


def level_slopes(values: np.ndarray, coefficients: np.ndarray, design: np.ndarray, sst_anomaly: np.ndarray, *,
                 latitude: np.ndarray, band: float, min_pairs: int = MIN_PAIRS, ridge: float = RIDGE) -> np.ndarray:
    """Slopes ``(scale band, lat)`` of one level's departure from its seasonal fit on the SST anomaly's scale
    bands: :func:`pooled_slopes` of :func:`normal_equations` of :func:`level_residual` (see those)."""
    residual = level_residual(values, coefficients, design)
    return pooled_slopes(normal_equations(residual, sst_anomaly), latitude=latitude, band=band,
                         min_pairs=min_pairs, ridge=ridge)


def _ridge_slopes(gram: np.ndarray, cross: np.ndarray, ridge: float, groups: int = 1) -> np.ndarray:
    """Least-squares slopes from the normal equations ``gram (k, k)``, ``cross (k,)``, each of ``groups``
    consecutive groups of regressors drawn towards the one slope of its bands' sum (which the ridge leaves
    unchanged for a single band); 0 without power."""
    power = np.trace(gram)
    if power <= 0:
        return np.zeros(cross.size)
    summed = np.kron(np.eye(groups), np.ones((cross.size // groups, 1)))  # (k, groups): each group's bands summed
    common = summed @ np.linalg.lstsq(summed.T @ gram @ summed, summed.T @ cross, rcond=None)[0]
    if np.isinf(ridge):
        return common
    weight = ridge * power / cross.size
    return np.linalg.solve(gram + weight * np.eye(cross.size), cross + weight * common)
