"""The first guess spread from observed columns, and the latent diffusion model that corrects it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon.diffusion import NoiseSchedule
from xdepthrecon.stats.smoothing import first_guess, observation_support
from xdepthrecon.diffusion.latent import LatentDiffusion
from xdepthrecon.models.unet import ConditionalUNet


def test_a_single_column_spreads_its_value_with_falling_support():
    z = torch.zeros(1, 2, 21, 21)
    z[0, :, 10, 10] = torch.tensor([3.0, -1.0])
    observed = torch.zeros(1, 1, 21, 21, dtype=torch.bool)
    observed[0, 0, 10, 10] = True
    out = first_guess(z, observed, [2.0])
    average, support = out[:, :2], out[:, 2]
    near = support[0] > np.log1p(1e-3)
    torch.testing.assert_close(average[0, 0][near], torch.full_like(average[0, 0][near], 3.0))
    torch.testing.assert_close(average[0, 1][near], torch.full_like(average[0, 1][near], -1.0))
    assert float(support[0, 10, 10]) == pytest.approx(np.log1p(1.0))
    assert support[0, 10, 10] > support[0, 10, 13] > support[0, 10, 16]
    assert torch.all(average[0, :, 0, 0] == 0) and float(support[0, 0, 0]) == 0.0  # beyond 3 sigma: no guess


def test_a_fully_observed_field_is_kept_where_smooth_and_edges_are_not_biased():
    z = torch.full((2, 3, 16, 24), 1.5)
    out = first_guess(z, torch.ones(2, 1, 16, 24, dtype=torch.bool), [1.0, 4.0])
    torch.testing.assert_close(out[:, 0:3], z)
    torch.testing.assert_close(out[:, 4:7], z)


def test_each_smaller_pass_fits_the_observations_closer_and_passes_run_largest_first():
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(1, 2, 32, 32, generator=generator)
    observed = torch.rand(1, 1, 32, 32, generator=generator) < 0.1
    out = first_guess(z, observed, [1.0, 4.0])  # given smallest first: still run from 4 down to 1
    large, final = out[:, 0:2], out[:, 3:5]
    torch.testing.assert_close(large, first_guess(z, observed, [4.0])[:, 0:2])
    at = observed.expand_as(z)
    assert (final - z)[at].abs().mean() < 0.5 * (large - z)[at].abs().mean()


def test_unobserved_values_never_leak_into_the_guess():
    z = torch.randn(1, 2, 12, 12)
    observed = torch.rand(1, 1, 12, 12) < 0.2
    poisoned = torch.where(observed, z, torch.full_like(z, 1e6))
    torch.testing.assert_close(first_guess(poisoned, observed, [2.0]), first_guess(z, observed, [2.0]))


def test_support_is_zero_far_from_profiles_and_grows_with_their_number():
    observed = torch.zeros(1, 1, 40, 40)
    observed[0, 0, 5, 5] = 1
    one = observation_support(observed, 2.0)
    observed[0, 0, 6, 5] = 1
    two = observation_support(observed, 2.0)
    assert float(one[0, 0, 35, 35]) == 0.0 and two[0, 0, 5, 5] > one[0, 0, 5, 5]


@pytest.fixture
def model_with_first_guess():
    torch.manual_seed(0)
    ae = xdepthrecon.DepthBandAutoencoder(5, 3, (4,), (4,), depth=np.arange(5.0), mean=np.zeros(5), std=np.ones(5))
    channels = LatentDiffusion.condition_channels(1, 3, (1.0, 3.0))
    assert channels == 1 + 3 + 1 + 2 * 4
    denoiser = ConditionalUNet(3, channels, dim=8, mults=(1,))
    return LatentDiffusion(ae, denoiser, NoiseSchedule("cosine", 50, "x0"), np.zeros(3), np.ones(3),
                           first_guess=(1.0, 3.0))


def test_an_x0_denoiser_corrects_the_largest_scale_guess(model_with_first_guess):
    model = model_with_first_guess
    x = torch.randn(1, 5, 16, 16)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[..., ::4, ::4] = True
    condition = model.condition(torch.where(mask, x, torch.nan), mask, torch.randn(1, 1, 16, 16))
    assert condition.shape[1] == model.denoiser.condition_channels
    for parameter in model.denoiser.parameters():
        parameter.data.zero_()
    z = torch.randn(1, 3, 16, 16)
    prediction = model.predict(z, torch.tensor([10]), condition)
    torch.testing.assert_close(prediction, condition[:, -4:-1])  # a silent network returns the guess


def test_the_first_guess_survives_save_and_load(model_with_first_guess, tmp_path):
    loaded = xdepthrecon.load(model_with_first_guess.save(tmp_path / "m.safetensors"))
    assert loaded.first_guess == (1.0, 3.0)
    with pytest.raises(ValueError, match="first guess"):
        LatentDiffusion(loaded.autoencoder, ConditionalUNet(3, 5, dim=8, mults=(1,)), NoiseSchedule("cosine", 50),
                        np.zeros(3), np.ones(3), first_guess=(2.0,))
