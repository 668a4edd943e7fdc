"""Regression of a level's departures from its seasonal fit on the SST anomaly, pooled by latitude band."""

from __future__ import annotations

import numpy as np

#: Fewest (anomaly, SST anomaly) pairs for a latitude band to get its own slope.
MIN_PAIRS = 100


def level_slopes(values: np.ndarray, coefficients: np.ndarray, design: np.ndarray, sst_anomaly: np.ndarray, *,
                 latitude: np.ndarray, band: float, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """Slope per latitude of one level's departure from its seasonal fit on the SST anomaly.

    ``values (time, lat, lon)`` are the level's training values, ``coefficients (regressor, lat, lon)`` their
    seasonal fit on ``design (time, regressor)``; cells with no more values than regressors are left out
    (an exact fit leaves no residual). The slope is pooled over the cells and times of each latitude
    band of ``band`` degrees of ``latitude (lat,)``; a band with fewer than ``min_pairs`` pairs takes the
    level's overall slope, and a level without any pair 0.
    """
    residual = values - np.einsum("tp,pyx->tyx", design, coefficients)
    residual[:, np.isfinite(values).sum(axis=0) <= design.shape[1]] = np.nan
    return _band_slopes(residual, sst_anomaly, latitude, band, min_pairs)


def _band_slopes(residual: np.ndarray, sst_anomaly: np.ndarray, latitude: np.ndarray, band: float,
                 min_pairs: int) -> np.ndarray:
    """Slope per latitude of ``residual`` on ``sst_anomaly`` (both ``(time, lat, lon)``), pooled per band."""
    valid = np.isfinite(residual) & np.isfinite(sst_anomaly)
    product = np.where(valid, residual * sst_anomaly, 0.0).sum(axis=(0, 2))
    power = np.where(valid, sst_anomaly**2, 0.0).sum(axis=(0, 2))
    pairs = valid.sum(axis=(0, 2))
    overall = product.sum() / power.sum() if power.sum() > 0 else 0.0
    bands = np.floor((latitude + 90.0) / band).astype(int)
    slope = np.full(latitude.size, overall)
    for label in np.unique(bands):
        rows = bands == label
        if pairs[rows].sum() >= min_pairs and power[rows].sum() > 0:
            slope[rows] = product[rows].sum() / power[rows].sum()
    return slope
