"""The error model: validation errors binned by observation support, and the spread floor it gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon.diffusion import NoiseSchedule
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.diffusion.latent import LatentDiffusion
from xdepthrecon.models.unet import ConditionalUNet


def test_columns_far_from_profiles_get_the_larger_error():
    rng = np.random.default_rng(0)
    support = rng.uniform(0.0, 3.0, 5000)
    std = np.stack([2.0 - 0.5 * support, 1.0 - 0.2 * support], axis=1)  # error falls with support, per level
    squared = (std * rng.standard_normal(std.shape)) ** 2
    squared[:100, 1] = np.nan  # a level below the bottom in some columns
    model = ErrorModel.fit(support, squared, scale=4.0, bins=5)
    assert model.variance.shape == (5, 2) and torch.all(torch.diff(model.variance, dim=0) < 0)
    observed = torch.zeros(1, 1, 30, 30, dtype=torch.bool)
    observed[0, 0, 15, 15] = True
    variance = model.expected_variance(observed)
    assert variance.shape == (1, 2, 30, 30)
    assert variance[0, 0, 15, 15] < variance[0, 0, 0, 0]  # near the profile vs far from it
    far = torch.tensor(np.nanmean(squared[support < np.quantile(support, 0.2)], axis=0), dtype=torch.float32)
    torch.testing.assert_close(variance[0, :, 0, 0], far, rtol=0.1, atol=0)


def test_binned_by_the_analysis_variance_the_error_follows_it_level_by_level():
    rng = np.random.default_rng(1)
    predicted = rng.uniform(0.1, 2.0, (4000, 2)) * np.array([1.0, 0.1])  # per level, different ranges
    squared = 1.5 * predicted * rng.standard_normal(predicted.shape) ** 2  # analysis 1.5x too confident
    model = ErrorModel.fit(predicted, squared, scale=4.0, bins=6, predictor="analysis")
    analysis_variance = torch.tensor([[0.2, 1.8], [0.02, 0.18]], dtype=torch.float32).reshape(1, 2, 1, 2)
    expected = model.expected_variance(torch.zeros(1, 1, 1, 2, dtype=torch.bool), analysis_variance)
    torch.testing.assert_close(expected, 1.5 * analysis_variance, rtol=0.35, atol=0)
    with pytest.raises(ValueError, match="pass analysis_variance"):
        model.expected_variance(torch.zeros(1, 1, 1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="predictor"):
        ErrorModel(2, 3, 1.0, predictor="distance")


def test_bad_input_and_the_round_trip_through_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="one predictor per column"):
        ErrorModel.fit(np.zeros(3), np.zeros((4, 2)), scale=2.0)
    errors = ErrorModel.fit(np.linspace(0, 1, 50), np.linspace(1, 2, 100).reshape(50, 2), scale=3.0, bins=4)
    ae = xdepthrecon.DepthBandAutoencoder(2, 2, (4,), (4,), depth=np.arange(2.0), mean=np.zeros(2), std=np.ones(2))
    model = LatentDiffusion(ae, ConditionalUNet(2, LatentDiffusion.condition_channels(1, 2), dim=8, mults=(1,)),
                            NoiseSchedule("cosine", 50), np.zeros(2), np.ones(2), error_model=errors)
    loaded = xdepthrecon.load(model.save(tmp_path / "m.safetensors"))
    assert loaded.error_model.scale == 3.0
    torch.testing.assert_close(loaded.error_model.variance, errors.variance)
    torch.testing.assert_close(loaded.error_model.edges, errors.edges)
