"""Seasonal cycles: harmonic regressors of the time of year and their least-squares fit, cell by cell."""

from __future__ import annotations

import numpy as np

from xdepthrecon.io.times import LEAP_YEAR_NS, as_profile_times, year_position

#: Smallest eigenvalue of the (count-normalised) normal matrix for a harmonic fit to count as well posed.
_MIN_EIGENVALUE = 1e-3


def seasonal_design(times: np.ndarray, harmonics: int) -> np.ndarray:
    """Regressors ``(time, 1 + 2 * harmonics)``: 1, cos and sin of k x the phase of the year, k = 1..harmonics.

    Climatological cftime axes (year 0 or 1) count by their month and day, as :func:`~xdepthrecon.grid_profiles` does.
    """
    dates, _ = as_profile_times(np.asarray(times))
    phase = 2.0 * np.pi * year_position(dates.astype("datetime64[ns]")) / LEAP_YEAR_NS
    columns = [np.ones_like(phase)]
    for k in range(1, harmonics + 1):
        columns += [np.cos(k * phase), np.sin(k * phase)]
    return np.stack(columns, axis=-1)


def fit_seasonal(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Least-squares coefficients ``(regressor, cell)`` of ``values (time, cell)`` on ``design (time, regressor)``.

    NaN values are left out. A cell whose fit is ill posed with all regressors drops the last
    harmonic (two columns) until it is well posed; cells without any value are NaN.
    """
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    weights = valid.astype("float64")
    count = weights.sum(axis=0)
    coefficients = np.full((design.shape[1], values.shape[1]), np.nan)
    for order in range(design.shape[1], 0, -2):
        todo = np.flatnonzero(np.isnan(coefficients[0]) & (count >= order))
        if todo.size == 0:
            continue
        regressors = design[:, :order]
        normal = np.einsum("tc,tk,tl->ckl", weights[:, todo], regressors, regressors)
        smallest = np.linalg.eigvalsh(normal / count[todo, None, None])[:, 0]
        posed = smallest > _MIN_EIGENVALUE if order > 1 else np.ones(todo.size, dtype=bool)
        todo, normal = todo[posed], normal[posed]
        right = np.einsum("tc,tk->ck", filled[:, todo], regressors)
        coefficients[:order, todo] = np.linalg.solve(normal, right[..., None])[..., 0].T
        coefficients[order:, todo] = 0.0
    return coefficients
