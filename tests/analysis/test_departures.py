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
    np.testing.assert_allclose(analysis.length_scale[0].numpy(), LENGTHS, rtol=0.3)
    np.testing.assert_allclose(np.sqrt(analysis.signal_variance[0].numpy()), STDS, rtol=0.25)
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
    with pytest.raises(ValueError, match="density_edges must increase"):
        DepartureAnalysis.fit([np.zeros((1, 3))], [np.zeros((2, 1))], density_edges=[0.1, 0.05])


def _one_point_fields(lengths: tuple[float, float], rng: np.random.Generator, count: int) -> tuple[list, list]:
    """``count`` GP patches of the two levels' ``lengths``, each seen at a fifth of its cells."""
    positions, departures = [], []
    for _ in range(count):
        lat = rng.uniform(-50, 40) + np.arange(14.0)
        lon = rng.uniform(-180, 170) + np.arange(14.0)
        grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
        cells = unit_vectors(grid_lat.ravel(), grid_lon.ravel())
        chord = EARTH_RADIUS_KM * np.sqrt(np.clip(2 - 2 * cells @ cells.T, 0, None))
        seen = np.flatnonzero(rng.random(len(cells)) < 0.2)
        levels = [np.linalg.cholesky(Covariance("matern32", length, 1.0, 0.0).signal(chord[np.ix_(seen, seen)])
                                     + 1e-6 * np.eye(seen.size)) @ rng.normal(size=seen.size) for length in lengths]
        positions.append(cells[seen])
        departures.append(np.stack(levels))
    return positions, departures


def test_each_density_class_gets_its_own_covariances_and_a_field_is_analysed_with_its_class():
    """Fields of class 0 drawn with short length scales, class 1 with long ones: each class recovers its own;
    an old state (per level, no classes) still loads."""
    rng = np.random.default_rng(4)
    short, long = _one_point_fields((150.0, 200.0), rng, 24), _one_point_fields((900.0, 1200.0), rng, 24)
    analysis = DepartureAnalysis.fit(short[0] + long[0], short[1] + long[1], classes=[0] * 24 + [1] * 24,
                                     density_edges=[0.1], seed=2)
    assert analysis.classes == 2 and analysis.config["classes"] == 2
    np.testing.assert_allclose(analysis.length_scale.numpy(), [[150.0, 200.0], [900.0, 1200.0]], rtol=0.35)
    assert [analysis.density_class(f) for f in (0.01, 0.0999, 0.1, 0.5)] == [0, 0, 1, 1]
    sparse, dense = (DepartureAnalysis.from_covariances(c, neighbours=analysis.neighbours, tile=analysis.tile)
                     for c in analysis.covariances)
    latitude, longitude = torch.arange(10.0)[None], torch.arange(10.0)[None]
    departure = torch.zeros(1, 2, 10, 10)
    observed = torch.zeros(1, 2, 10, 10, dtype=torch.bool)
    departure[0, :, 2, 3], observed[0, :, 2, 3] = torch.tensor([1.0, -1.0]), True
    for ocean, expected in ((None, sparse), (torch.zeros(1, 10, 10, dtype=torch.bool), dense)):
        if ocean is not None:
            ocean[0, 1:4, 2:5] = True  # 1 of 9 ocean columns observed: the dense class
        got, want = analysis(departure, observed, latitude, longitude, ocean=ocean), expected(departure, observed,
                                                                                              latitude, longitude)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
    old = {name: value[0] for name, value in sparse.state_dict().items() if name != "density_edges"}
    loaded = DepartureAnalysis(2, neighbours=analysis.neighbours, tile=analysis.tile)
    loaded.load_state_dict(old)
    assert loaded.covariances == sparse.covariances and loaded.classes == 1
    with pytest.raises(ValueError, match="no class of density"):
        DepartureAnalysis.fit(short[0][:1], [d[:, :1] for d in short[1][:1]], classes=[1], density_edges=[0.1])


def test_an_analysis_from_given_covariances_interpolates_one_observation_exactly():
    given = [Covariance("exponential", 500.0, 1.0, 0.25), Covariance("exponential", 1000.0, 4.0, 0.0625)]
    analysis = DepartureAnalysis.from_covariances(given, neighbours=4, tile=4)
    assert analysis.covariances == [given] and analysis.classes == 1
    assert analysis.config == {"levels": 2, "kernel": "exponential", "neighbours": 4, "tile": 4, "overlap": 2,
                               "classes": 1}
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
