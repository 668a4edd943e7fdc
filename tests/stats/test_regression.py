"""Slopes of a level's departures on the SST anomaly's scale bands, pooled by latitude band, with a ridge."""

from __future__ import annotations

import numpy as np

from xdepthrecon.stats.regression import normal_equations, pooled_slopes


def _sums(slopes: tuple[float, float], seed: int = 0):
    rng = np.random.default_rng(seed)
    bands = rng.normal(size=(30, 8, 10, 2))
    residual = bands @ np.asarray(slopes) + 0.01 * rng.normal(size=(30, 8, 10))
    return normal_equations(residual, bands), bands, residual


def test_each_scale_band_gets_its_own_slope():
    sums, _, _ = _sums((1.0, 0.2))
    slope = pooled_slopes(sums, latitude=np.linspace(30, 40, 8), band=20.0, ridge=1e-3)
    assert slope.shape == (2, 8)
    np.testing.assert_allclose(slope, np.array([[1.0], [0.2]]) * np.ones(8), atol=0.01)


def test_an_infinite_ridge_gives_the_one_slope_of_the_whole_anomaly():
    sums, bands, residual = _sums((1.0, 0.2))
    total = bands.sum(axis=-1)
    common = (residual * total).sum() / (total**2).sum()
    slope = pooled_slopes(sums, latitude=np.linspace(30, 40, 8), band=20.0, ridge=np.inf)
    np.testing.assert_allclose(slope, common)
    single = normal_equations(residual, total[..., None])  # one band: the ridge changes nothing
    np.testing.assert_allclose(pooled_slopes(single, latitude=np.linspace(30, 40, 8), band=20.0, ridge=1.0), common)


def test_a_band_without_power_takes_the_common_slope_and_too_few_pairs_the_overall():
    rng = np.random.default_rng(1)
    bands = np.stack([rng.normal(size=(30, 8, 10)), np.zeros((30, 8, 10))], axis=-1)  # a coarse grid's empty band
    residual = 0.7 * bands[..., 0]
    slope = pooled_slopes(normal_equations(residual, bands), latitude=np.linspace(30, 40, 8), band=20.0)
    np.testing.assert_allclose(slope, 0.7, atol=1e-6)
    residual[:, :4] = np.nan  # the southern rows have no pair: they take the overall slopes
    rows = pooled_slopes(normal_equations(residual, bands), latitude=np.linspace(0, 70, 8), band=10.0, min_pairs=5)
    np.testing.assert_allclose(rows, 0.7, atol=1e-6)


def test_slopes_that_vary_with_the_season_are_recovered_from_the_seasonal_terms():
    rng = np.random.default_rng(2)
    phase = 2 * np.pi * np.arange(48) / 12
    season = np.stack([np.ones(48), np.cos(phase), np.sin(phase)], axis=1)
    bands = rng.normal(size=(48, 8, 10, 2))
    slopes = np.stack([0.5 + 0.4 * np.cos(phase), np.full(48, 0.2)], axis=1)  # (time, band): the first band's varies
    residual = np.einsum("tk,tyxk->tyx", slopes, bands) + 0.01 * rng.normal(size=(48, 8, 10))
    sums = normal_equations(residual, bands, season)
    plain = normal_equations(residual, bands)
    np.testing.assert_allclose(sums.gram[:, :2, :2], plain.gram)  # the constant term's block is the plain regression
    np.testing.assert_allclose(sums.cross[:, :2], plain.cross)
    slope = pooled_slopes(sums, latitude=np.linspace(30, 40, 8), band=20.0, ridge=1e-3, groups=3)
    assert slope.shape == (6, 8)  # (season term, band) x latitude
    np.testing.assert_allclose(slope[:, 0], [0.5, 0.2, 0.4, 0.0, 0.0, 0.0], atol=0.01)
    common = pooled_slopes(sums, latitude=np.linspace(30, 40, 8), band=20.0, ridge=np.inf, groups=3)
    np.testing.assert_allclose(common[0::2], common[1::2])  # each season term: one slope for both bands
    np.testing.assert_allclose(common[2, 0], 0.4 * 0.5 / (0.5 + 0.5), atol=0.02)  # the cosine's share of the sum
