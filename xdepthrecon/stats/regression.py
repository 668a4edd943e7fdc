"""Regression of a level's departures from its seasonal fit on the SST anomaly (or its scale bands), pooled by
latitude band."""

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


def normal_equations(residual: np.ndarray, sst_anomaly: np.ndarray) -> NormalEquations:
    """The sums of the regression of ``residual (time, lat, lon)`` on ``sst_anomaly (time, lat, lon, band)``
    (its scale bands, :func:`~xdepthrecon.stats.scales.scale_bands`; one band: the anomaly itself) over the
    times and cells where both are finite."""
    valid = np.isfinite(residual) & np.isfinite(sst_anomaly).all(axis=-1)
    regressors = np.where(valid[..., None], sst_anomaly, 0.0)
    residual = np.where(valid, residual, 0.0)
    return NormalEquations(np.einsum("tyxk,tyxl->ykl", regressors, regressors),
                           np.einsum("tyxk,tyx->yk", regressors, residual), valid.sum(axis=(0, 2)))


def pooled_slopes(sums: NormalEquations, *, latitude: np.ndarray, band: float, min_pairs: int = MIN_PAIRS,
                  ridge: float = RIDGE) -> np.ndarray:
    """Slopes ``(scale band, lat)`` of one level on the SST anomaly's scale bands, pooled per latitude band.

    The slopes (one per scale band, without intercept) solve ``sums`` pooled over the rows of each latitude
    band of ``band`` degrees of ``latitude (lat,)``, with a ridge of ``ridge`` times the mean power of the
    scale bands towards one common slope for all of them (a scale band the data hardly hold takes the common
    slope; ``ridge=inf``: the common slope alone). A latitude band with fewer than ``min_pairs`` pairs takes
    the level's overall slopes, and a level without any pair 0.
    """
    overall = _ridge_slopes(sums.gram.sum(axis=0), sums.cross.sum(axis=0), ridge)
    slope = np.repeat(overall[:, None], latitude.size, axis=1)
    bands = np.floor((latitude + 90.0) / band).astype(int)
    for label in np.unique(bands):
        rows = bands == label
        if sums.pairs[rows].sum() >= min_pairs and np.trace(sums.gram[rows].sum(axis=0)) > 0:
            slope[:, rows] = _ridge_slopes(sums.gram[rows].sum(axis=0), sums.cross[rows].sum(axis=0), ridge)[:, None]
    return slope


def level_slopes(values: np.ndarray, coefficients: np.ndarray, design: np.ndarray, sst_anomaly: np.ndarray, *,
                 latitude: np.ndarray, band: float, min_pairs: int = MIN_PAIRS, ridge: float = RIDGE) -> np.ndarray:
    """Slopes ``(scale band, lat)`` of one level's departure from its seasonal fit on the SST anomaly's scale
    bands: :func:`pooled_slopes` of :func:`normal_equations` of :func:`level_residual` (see those)."""
    residual = level_residual(values, coefficients, design)
    return pooled_slopes(normal_equations(residual, sst_anomaly), latitude=latitude, band=band,
                         min_pairs=min_pairs, ridge=ridge)


def _ridge_slopes(gram: np.ndarray, cross: np.ndarray, ridge: float) -> np.ndarray:
    """Least-squares slopes from the normal equations ``gram (k, k)``, ``cross (k,)``, drawn towards the one
    slope of the bands' sum (which the ridge leaves unchanged for a single band); 0 without power."""
    power = np.trace(gram)
    if power <= 0:
        return np.zeros(cross.size)
    common = cross.sum() / gram.sum() if gram.sum() > 0 else 0.0
    if np.isinf(ridge):
        return np.full(cross.size, common)
    weight = ridge * power / cross.size
    return np.linalg.solve(gram + weight * np.eye(cross.size), cross + weight * common)
