"""The departure analysis: covariances fitted to patches or given, optimal interpolation on any grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdepthrecon.analysis.departures import DepartureAnalysis
from xdepthrecon.stats.covariance import Covariance
from xdepthrecon.stats.geometry import EARTH_RADIUS_KM, unit_vectors

LENGTHS, STDS, NOISE = (300.0, 900.0), (1.0, 0.5), 0.05


def _gp_patch(rng: np.random.Generator, size: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A patch of 1-degree cells somewhere in mid-latitudes and two levels drawn from known GPs (plus noise)."""
    lat = rng.uniform(-50, 40) + np.arange(size, dtype=float)
    lon = rng.uniform(-180, 170) + np.arange(size, dtype=float)
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    cells = unit_vectors(grid_lat.ravel(), grid_lon.ravel())
    chord = 6371.0 * np.sqrt(np.clip(2 - 2 * cells @ cells.T, 0, None))
    levels = []
    for length, std in zip(LENGTHS, STDS):
        cov = Covariance("matern32", length, std**2, 0.0).signal(chord) + 1e-8 * np.eye(len(cells))
        draw = np.linalg.cholesky(cov) @ rng.normal(size=len(cells))
        levels.append(draw + NOISE * rng.normal(size=len(cells)))
    return lat, lon, np.stack(levels).reshape(2, size, size)


def _fitted(rng: np.random.Generator) -> DepartureAnalysis:
    positions, departures = [], []
    for _ in range(48):
        lat, lon, field = _gp_patch(rng)
        rows, columns = np.nonzero(rng.random(field.shape[1:]) < 0.3)
        positions.append(unit_vectors(lat[rows], lon[columns]))
        departures.append(field[:, rows, columns])
    return DepartureAnalysis.fit(positions, departures, seed=1)


def test_the_fit_recovers_each_levels_covariance_and_the_analysis_is_calibrated():
    rng = np.random.default_rng(0)
    analysis = _fitted(rng)
    np.testing.assert_allclose(analysis.length_scale.numpy(), LENGTHS, rtol=0.3)
    np.testing.assert_allclose(np.sqrt(analysis.signal_variance.numpy()), STDS, rtol=0.25)
    errors, zero_errors, scores = [], [], []
    for _ in range(6):  # new patches, not fitted to
        lat, lon, field = _gp_patch(rng)
        observed = torch.from_numpy(np.broadcast_to(rng.random(field.shape[1:]) < 0.2, field.shape).copy())
        truth = torch.from_numpy(field)[None].float()
        departure = torch.where(observed[None], truth, torch.tensor(123.0))  # unobserved values never leak
        mean, variance = analysis(departure, observed[None], torch.tensor(lat)[None], torch.tensor(lon)[None])
        hidden = ~observed[None]
        errors.append((mean - truth)[hidden].square().mean())
        zero_errors.append(truth[hidden].square().mean())
        scores.append(((mean - truth) / variance.sqrt())[hidden])
    assert np.mean(errors) < 0.5 * np.mean(zero_errors)
    assert float(torch.cat(scores).std()) == pytest.approx(1.0, abs=0.25)


def test_far_from_observations_the_analysis_is_zero_with_the_prior_variance():
    analysis = DepartureAnalysis(2, neighbours=4, tile=4)
    analysis.length_scale.copy_(torch.tensor([100.0, 200.0]))
    analysis.signal_variance.copy_(torch.tensor([1.0, 4.0]))
    analysis.noise_variance.copy_(torch.tensor([0.01, 0.04]))
    departure = torch.zeros(1, 2, 8, 40)
    observed = torch.zeros(1, 2, 8, 40, dtype=torch.bool)
    departure[0, :, 2, 3], observed[0, :, 2, 3] = torch.tensor([2.0, -1.0]), True
    latitude, longitude = torch.arange(8.0)[None], torch.arange(40.0)[None] * 2
    mean, variance = analysis(departure, observed, latitude, longitude)
    assert mean[0, 0, 2, 3] == pytest.approx(2.0 / 1.01, rel=1e-4)  # one observation with its noise
    assert mean[0, 1, 2, 3] == pytest.approx(-1.0 / 1.01, rel=1e-4)
    torch.testing.assert_close(mean[0, :, :, 30:], torch.zeros(2, 8, 10), atol=1e-6, rtol=0)
    far = variance[0, :, :, 30:]
    assert far[0].max() / far[0].min() < 1.001 and far[1].max() / far[1].min() < 1.001
    with pytest.raises(ValueError, match="has 2 levels"):
        analysis(departure[:, :1], observed[:, :1], latitude, longitude)
    with pytest.raises(ValueError, match="kernel"):
        DepartureAnalysis(2, kernel="cubic")
    with pytest.raises(ValueError, match="overlap"):
        DepartureAnalysis(2, tile=4, overlap=3)
    with pytest.raises(ValueError, match="no observed departures"):
        DepartureAnalysis.fit([], [])


def test_an_analysis_from_given_covariances_interpolates_one_observation_exactly():
    given = [Covariance("exponential", 500.0, 1.0, 0.25), Covariance("exponential", 1000.0, 4.0, 0.0625)]
    analysis = DepartureAnalysis.from_covariances(given, neighbours=4, tile=4)
    assert analysis.covariances == given
    assert analysis.config == {"levels": 2, "kernel": "exponential", "neighbours": 4, "tile": 4, "overlap": 2}
    latitude, longitude = torch.tensor([[0.0, 5.0, 10.0]]), torch.tensor([[0.0, 5.0, 10.0, 15.0, 20.0]])
    departure = torch.zeros(1, 2, 3, 5)
    observed = torch.zeros(1, 2, 3, 5, dtype=torch.bool)
    departure[0, :, 1, 1], observed[0, :, 1, 1] = torch.tensor([2.0, -1.0]), True
    mean, variance = analysis(departure, observed, latitude, longitude)
    grid = np.meshgrid(latitude[0].numpy(), longitude[0].numpy(), indexing="ij")
    cells = unit_vectors(*grid)
    distance = EARTH_RADIUS_KM * np.linalg.norm(cells - cells[1, 1], axis=-1)  # chord through the Earth
    for level, (cov, value) in enumerate(zip(given, (2.0, -1.0))):
        total = cov.signal_variance + cov.noise_variance
        correlation = cov.signal_variance * np.exp(-distance / cov.length_scale)  # the exponential kernel
        np.testing.assert_allclose(mean[0, level].numpy(), correlation / total * value, rtol=1e-5, atol=1e-7)
        scale = (value**2 / total + 8.0) / (1.0 + 8.0)  # the local variance scale of one anomaly (PRIOR_WEIGHT 8)
        expected = np.maximum(total - correlation**2 / total, cov.noise_variance) * scale
        np.testing.assert_allclose(variance[0, level].numpy(), expected, rtol=1e-5)
    only_mean, none = analysis(departure, observed, latitude, longitude, with_variance=False)
    assert none is None
    torch.testing.assert_close(only_mean, mean, rtol=0, atol=0)
    with pytest.raises(ValueError, match="share one kernel"):
        DepartureAnalysis.from_covariances([given[0], Covariance("matern32", 500.0, 1.0, 0.25)])
