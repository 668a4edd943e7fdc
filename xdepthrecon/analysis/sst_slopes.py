"""The SST slopes of a seasonal background: the SST anomaly's scale bands, and each level's choice of ridge and
seasonal variation, made by cross-validation over time.

A background's slopes on the SST anomaly's scale bands may be drawn towards one common slope (a ridge) and may
vary with the time of year (:class:`~xdepthrecon.analysis.background.SeasonalBackground`). Which of these a
level's data hold is decided by predicting each fold of the training times from the others
(:func:`slope_choice`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from xdepthrecon.io.cube import is_global
from xdepthrecon.stats.regression import RIDGES, NormalEquations, level_residual, normal_equations, pooled_slopes
from xdepthrecon.stats.scales import scale_bands
from xdepthrecon.stats.seasonal import fit_seasonal

#: Consecutive blocks of the training times that choose the ridge of the scale bands' slopes.
TIME_FOLDS = 4


class SlopeChoice(NamedTuple):
    """Per level (channel): the ridge of the SST's scale-band slopes
    (:func:`~xdepthrecon.stats.regression.pooled_slopes`) and whether they vary with the season."""

    ridge: Sequence[float]
    seasonal: Sequence[bool]


class SlopeGrid(NamedTuple):
    """The training grid's coordinates, the SST's scale bands (km) and the slopes' pooling settings."""

    latitude: np.ndarray
    longitude: np.ndarray
    scales_km: tuple[float, ...]
    band: float
    min_pairs: int


def sst_bands(surface: np.ndarray, design: np.ndarray, sst_coefficients: np.ndarray, grid: SlopeGrid) -> np.ndarray:
    """Scale bands ``(time, lat, lon, band)`` of the SST ``surface (time, lat, lon)``'s anomaly from its seasonal
    fit (``sst_coefficients (regressor, lat, lon)`` on ``design``), NaN where the anomaly is."""
    anomaly = surface - np.einsum("tp,pyx->tyx", design, sst_coefficients)
    valid = torch.from_numpy(np.isfinite(anomaly))
    bands = scale_bands(torch.from_numpy(anomaly).float(), valid, grid.scales_km, latitude=grid.latitude,
                        longitude=grid.longitude, periodic=is_global(grid.longitude)).double().numpy()
    return np.where(valid.numpy()[:, None], bands, np.nan).transpose(0, 2, 3, 1)


def slope_choice(values: np.ndarray, surface: np.ndarray, design: np.ndarray, season: np.ndarray, *, grid: SlopeGrid,
                  choice: SlopeChoice | None) -> tuple[np.ndarray, np.ndarray]:
    """Each level's ridge and whether its slopes vary with the season (``season (time, s)``, the slopes' seasonal
    design; one column: they cannot): ``choice``, checked, or (None) chosen by :func:`_chosen_slopes`."""
    if choice is None:
        return _chosen_slopes(values, surface, design, season, grid)
    ridges, seasons = np.asarray(choice.ridge, np.float64), np.asarray(choice.seasonal, dtype=bool)
    if ridges.shape != (values.shape[1],) or seasons.shape != (values.shape[1],):
        raise ValueError(f"the slope choice must give one ridge and one seasonal flag per channel ({values.shape[1]}), "
                         f"got shapes {ridges.shape} and {seasons.shape}")
    if seasons.any() and season.shape[1] == 1:
        raise ValueError("seasonal slopes need slope_harmonics > 0")
    return ridges, seasons


def _chosen_slopes(values: np.ndarray, surface: np.ndarray, design: np.ndarray, season: np.ndarray,
                   grid: SlopeGrid) -> tuple[np.ndarray, np.ndarray]:
    """The ridge of each level's scale-band slopes (one of :data:`~xdepthrecon.stats.regression.RIDGES`) and
    whether they vary with the season (only where ``season`` has harmonics) that predict its departures best
    at times the fit did not see, in the worse of two cross-validations: the training times cut into
    :data:`TIME_FOLDS` consecutive blocks (a season or year not seen), and dealt into as many interleaved folds
    (a time between seen ones); each fold is predicted from seasonal fits and slopes fitted to the others. Data
    that cannot tell many slopes apart choose one constant slope for all scales (``inf``, not seasonal); so does
    a fit without enough times to hold any out."""
    times, channels = values.shape[:2]
    options = [(ridge, seasonal) for seasonal in ((False, True) if season.shape[1] > 1 else (False,))
               for ridge in (RIDGES if grid.scales_km else (np.inf,))]
    chosen = np.full(channels, np.inf), np.zeros(channels, dtype=bool)
    if len(options) == 1 or times < 2 * (design.shape[1] + season.shape[1]):
        return chosen
    schemes = (np.arange(times) * TIME_FOLDS // times, np.arange(times) % TIME_FOLDS)
    errors = np.stack([_held_out_errors(values, surface, design, season, grid, fold_of, options)
                       for fold_of in schemes])
    reference = errors[..., options.index((np.inf, False))]
    relative = (errors / np.where(reference > 0, reference, np.inf)[..., None]).max(axis=0)
    scored = reference.min(axis=0) > 0
    best = relative.argmin(axis=1)
    chosen[0][scored] = np.asarray([ridge for ridge, _ in options])[best[scored]]
    chosen[1][scored] = np.asarray([seasonal for _, seasonal in options])[best[scored]]
    return chosen


def _held_out_errors(values: np.ndarray, surface: np.ndarray, design: np.ndarray, season: np.ndarray, grid: SlopeGrid,
                     fold_of: np.ndarray, options: Sequence[tuple[float, bool]]) -> np.ndarray:
    """Squared errors ``(channel, option)`` of each level's departures at each fold's times (``fold_of``), predicted
    from the seasonal fits and scale-band slopes of the other folds with each option (ridge, seasonal)."""
    errors = np.zeros((values.shape[1], len(options)))
    bands_count = len(grid.scales_km) + 1
    for fold in np.unique(fold_of):
        held, others = fold_of == fold, fold_of != fold
        fitted = lambda data: fit_seasonal(data[others].reshape(others.sum(), -1), design[others])  # noqa: E731
        bands = sst_bands(surface, design, fitted(surface).reshape(-1, *surface.shape[1:]), grid)
        coefficients = fitted(values).reshape(-1, *values.shape[1:])
        for channel in range(values.shape[1]):
            residual = level_residual(values[:, channel], coefficients[:, channel], design)
            seasonal_sums = normal_equations(residual[others], bands[others], season[others])
            constant_sums = NormalEquations(seasonal_sums.gram[:, :bands_count, :bands_count],
                                            seasonal_sums.cross[:, :bands_count], seasonal_sums.pairs)
            for index, (ridge, seasonal) in enumerate(options):
                terms = season.shape[1] if seasonal else 1
                slope = pooled_slopes(seasonal_sums if seasonal else constant_sums, latitude=grid.latitude,
                                      band=grid.band, min_pairs=grid.min_pairs, ridge=ridge, groups=terms)
                predicted = np.einsum("tm,mky,tyxk->tyx", season[held, :terms],
                                      slope.reshape(terms, bands_count, -1), bands[held])
                errors[channel, index] += np.nansum((residual[held] - predicted) ** 2)
    return errors
