"""Covariance kernels: the local GP prediction near and far from its sources."""

from __future__ import annotations

import numpy as np
import pytest

from xdepthrecon.stats.covariance import KERNELS, Covariance, blended_tiles, predict, tile_labels
from xdepthrecon.stats.geometry import chord_km, unit_vectors


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_predict_std_small_at_observations_and_prior_far_away(kernel):
    cov = Covariance(kernel, length_scale=500.0, signal_variance=4.0, noise_variance=1e-4)
    lat, lon = np.array([0.0, 1.0, -1.0, 2.0]), np.array([0.0, 1.0, 2.0, -1.0])
    sources, values = unit_vectors(lat, lon), np.array([1.0, 2.0, 0.5, -1.0])
    targets = unit_vectors(np.array([0.0, 0.5, 10.0, 0.0]), np.array([0.0, 0.5, 0.0, 180.0]))
    mean, variance = predict(sources, values, targets, np.arange(4), cov=cov, local_variance=False)
    std = np.sqrt(variance)
    assert mean[0] == pytest.approx(1.0, abs=1e-3)  # at an observation
    assert std[0] < 0.02
    assert std[0] < std[1] < std[2] < std[3]
    assert std[3] == pytest.approx(np.sqrt(4.0 + 1e-4), rel=1e-6)  # the antipode: the prior
    assert mean[3] == pytest.approx(0.0, abs=1e-9)


def test_blended_tiles_are_a_partition_of_unity_that_vanishes_at_each_tiles_reach():
    labels, weights = blended_tiles(21, 30, 8, 3)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    assert weights.min() >= 0 and (weights > 0).sum(axis=0).max() == 4
    cols = np.arange(30)
    for label in np.unique(labels[weights > 0]):
        reach = cols[((labels == label) & (weights > 0)).reshape(4, 21, 30).any(axis=(0, 1))]
        assert reach.min() == max(0, 8 * (label % 4) - 3) and reach.max() == min(29, 8 * (label % 4) + 10)
    plain, ones = blended_tiles(21, 30, 8, 0)
    np.testing.assert_array_equal(plain[ones.argmax(axis=0), np.arange(21 * 30)], tile_labels(21, 30, 8))
    with pytest.raises(ValueError, match="overlap"):
        blended_tiles(21, 30, 8, 5)


def _smooth_case(rows: int, cols: int, count: int, rng: np.random.Generator, noise: float = 0.0):
    """A 2-degree grid from 89 S, ``count`` observed cells and a smooth field on them (plus white ``noise``)."""
    lat, lon = np.meshgrid(-89 + 2.0 * np.arange(rows), -179 + 2.0 * np.arange(cols), indexing="ij")
    cells = unit_vectors(lat.ravel(), lon.ravel())
    waves = [(rng.normal(), rng.integers(1, 6), rng.integers(1, 8), rng.uniform(0, 6)) for _ in range(12)]
    field = sum(a * np.cos(k * np.radians(lat) + p) * np.cos(m * np.radians(lon)) for a, k, m, p in waves).ravel()
    observed = rng.choice(rows * cols, count, replace=False)
    return cells, observed, field[observed] / 3 + noise * rng.normal(size=count)


def test_blended_tiles_leave_no_steps_in_the_stated_std_at_tile_edges():
    rows, cols, tile = 90, 180, 8  # the globe at 2 degrees, 500 profiles
    cells, observed, values = _smooth_case(rows, cols, 500, np.random.default_rng(0), noise=0.1)
    cov = Covariance("matern32", 1200.0, 1.0, 0.01)

    def edge_to_inside(variance):  # largest std step between neighbouring cells across tile edges / within tiles
        std = np.sqrt(variance).reshape(rows, cols)
        steps = np.abs(np.diff(std, axis=0)), np.abs(np.diff(std, axis=1))
        edges = [np.arange(1, n) % tile == 0 for n in (rows, cols)]
        return (max(steps[0][edges[0]].max(), steps[1][:, edges[1]].max())
                / max(steps[0][~edges[0]].max(), steps[1][:, ~edges[1]].max()))

    _, plain = predict(cells[observed], values, cells, tile_labels(rows, cols, tile), cov=cov)
    labels, weights = blended_tiles(rows, cols, tile, 3)
    _, blended = predict(cells[observed], values, cells, labels, cov=cov, weights=weights)
    assert edge_to_inside(plain) > 2.0  # the tile-local variance scale and neighbours step at the edges (2.7)
    assert edge_to_inside(blended) < 1.0  # 0.79


def test_the_blended_mean_interpolates_noise_free_observations_like_one_global_solve():
    rows, cols = 30, 30
    cells, observed, values = _smooth_case(rows, cols, 60, np.random.default_rng(4))
    cov = Covariance("matern32", 800.0, 1.0, 1e-8)
    labels, weights = blended_tiles(rows, cols, 8, 3)
    mean, variance = predict(cells[observed], values, cells, labels, cov=cov, weights=weights, local_variance=False)
    np.testing.assert_allclose(mean[observed], values, atol=1e-4)
    assert variance[observed].max() < 1e-4
    gram = cov.signal(chord_km(cells[observed], cells[observed])) + 1e-8 * np.eye(len(observed))
    exact = cov.signal(chord_km(cells, cells[observed])) @ np.linalg.solve(gram, values)
    assert np.sqrt(np.mean((mean - exact) ** 2)) < 0.02 * values.std()


@pytest.mark.parametrize("rows", [12, 70])  # a few levels per pass of the kernels, and one
def test_levels_of_mixed_kernels_are_predicted_as_each_level_alone(rows):
    cells, observed, values = _smooth_case(rows, rows, 40, np.random.default_rng(5))
    rng = np.random.default_rng(6)
    field = values[None] * rng.uniform(0.5, 2.0, (7, 1))
    field[rng.random(field.shape) < 0.2] = np.nan  # some levels unobserved in some columns
    covariances = [Covariance(sorted(KERNELS)[level % 3], 300.0 + 150.0 * level, 1.0 + level, 0.01 * (level + 1))
                   for level in range(7)]
    labels, weights = blended_tiles(rows, rows, 8, 2)
    mean, variance = predict(cells[observed], field, cells, labels, cov=covariances, weights=weights, neighbours=16)
    for level, cov in enumerate(covariances):
        alone = predict(cells[observed], field[level : level + 1], cells, labels, cov=[cov], weights=weights,
                        neighbours=16)
        np.testing.assert_allclose(mean[level], alone[0][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(variance[level], alone[1][0], rtol=1e-9, atol=1e-12)
        assert variance[level].min() > 0
