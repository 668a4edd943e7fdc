"""The departure analysis: covariances fitted to patches, optimal interpolation on any grid, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon.baselines._inputs import unit_vectors
from xdepthrecon.baselines.optimal_interpolation import Covariance
from xdepthrecon.analysis.departures import DepartureAnalysis

from .test_background import _first_month, model_with_background  # noqa: F401  (fixture)

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
    with pytest.raises(ValueError, match="no observed departures"):
        DepartureAnalysis.fit([], [])


def test_a_model_with_an_analysis_interpolates_departures_and_survives_save_and_load(model_with_background,
                                                                                     tmp_path):
    model, latent, sst = model_with_background
    analysis = DepartureAnalysis(5, neighbours=8, tile=4)
    analysis.length_scale.fill_(400.0)
    analysis.noise_variance.fill_(1e-4)
    model.analysis = analysis
    background = _first_month(model, latent, sst)
    x = torch.full((1, 5, 16, 16), torch.nan)
    x[0, :3, 3, 4] = torch.tensor([20.0, 15.0, 9.0])
    mask = ~torch.isnan(x)
    coords = (torch.tensor(latent.latitude.values)[None], torch.tensor(latent.longitude.values)[None])
    with pytest.raises(ValueError, match="latitude and longitude"):
        model.temperature_guess(x, mask, background)
    estimate = model.temperature_guess(x, mask, background, None, *coords)
    torch.testing.assert_close(estimate.value[0, :3, 3, 4], x[0, :3, 3, 4], atol=0.01, rtol=0)  # nugget 1e-4 of 1
    assert estimate.variance.shape == (1, 5, 16, 16) and estimate.variance[0, 0, 3, 4] < estimate.variance[0, 0, 14, 14]
    far = model.autoencoder.decode(background)
    torch.testing.assert_close(estimate.value[0, 3:, 3, 4], far[0, 3:, 3, 4], atol=1e-5, rtol=0)  # unobserved levels
    loaded = xdepthrecon.load(model.save(tmp_path / "m.safetensors"))
    assert loaded.analysis.covariances == model.analysis.covariances
    again = loaded.temperature_guess(x, mask, background, None, *coords)
    torch.testing.assert_close(again.value, estimate.value, rtol=0, atol=0)
    torch.testing.assert_close(again.variance, estimate.variance, rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs a background"):
        type(model)(model.autoencoder, model.denoiser, model.schedule, np.zeros(2), np.ones(2),
                    first_guess=(2.0,), analysis=analysis)
