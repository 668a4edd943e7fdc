"""Sampler maths against closed forms, with dummy denoisers whose exact answer is known."""

from __future__ import annotations

import pytest
import torch

from xdepthrecon.diffusion import NoiseSchedule, sample
from xdepthrecon.diffusion.samplers import timesteps

MU, SCALE = 1.5, 0.5


def gaussian_denoiser(schedule: NoiseSchedule):
    """The exact posterior mean denoiser for data ~ N(MU, SCALE^2), in the schedule's target."""

    def denoise(x_t, t):
        alpha_bar = schedule.alpha_bar[t].reshape(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype)
        gain = alpha_bar.sqrt() * SCALE**2 / (alpha_bar * SCALE**2 + 1 - alpha_bar)
        x0 = MU + gain * (x_t - alpha_bar.sqrt() * MU)
        if schedule.target == "x0":
            return x0
        eps = schedule.predict_eps(x0, x_t, t)
        if schedule.target == "eps":
            return eps
        return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0

    return denoise


@pytest.mark.parametrize("target", ["x0", "eps", "v"])
@pytest.mark.parametrize("steps", [1, 7, 50])
def test_ddim_with_the_true_x0_is_exact(target, steps):
    schedule = NoiseSchedule("cosine", steps=1000, target=target)
    truth = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def oracle(x_t, t):
        return schedule.training_target(truth, schedule.predict_eps(truth, x_t, t), t)

    start = torch.randn(truth.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = sample(oracle, truth.shape, schedule, steps=steps, x_T=start)
    torch.testing.assert_close(out, truth, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize(("sampler", "eta", "steps"), [("ddim", 0.0, 50), ("ddim", 1.0, 100), ("ddpm", 1.0, 0)])
@pytest.mark.parametrize("target", ["x0", "eps", "v"])
def test_samples_follow_the_data_distribution(sampler, eta, steps, target):
    schedule = NoiseSchedule("cosine", steps=250, target=target)
    out = sample(gaussian_denoiser(schedule), (2000, 1), schedule, steps=steps or 50, sampler=sampler, eta=eta,
                 generator=torch.Generator().manual_seed(3))
    assert abs(float(out.mean()) - MU) < 0.04
    assert abs(float(out.std()) - SCALE) < 0.04


def test_same_generator_state_gives_the_same_samples():
    schedule = NoiseSchedule(steps=100)
    denoiser = gaussian_denoiser(schedule)
    first = sample(denoiser, (3, 2), schedule, steps=10, eta=0.5, generator=torch.Generator().manual_seed(9))
    second = sample(denoiser, (3, 2), schedule, steps=10, eta=0.5, generator=torch.Generator().manual_seed(9))
    third = sample(denoiser, (3, 2), schedule, steps=10, eta=0.5, generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(first, second)
    assert not torch.equal(first, third)


def test_projection_keeps_known_values():
    schedule = NoiseSchedule(steps=100)
    known = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    known[:, :, 1, 2] = True

    def project(x0, t):
        return torch.where(known, torch.tensor(-3.0), x0)

    out = sample(gaussian_denoiser(schedule), (2, 1, 4, 4), schedule, steps=20, eta=1.0, project=project,
                 generator=torch.Generator().manual_seed(0))
    assert torch.all(out[known] == -3.0) and torch.all(out[~known] != -3.0)


@pytest.mark.parametrize("target", ["x0", "eps"])
def test_the_first_estimate_is_the_clean_estimate_at_the_noisiest_level(target):
    schedule = NoiseSchedule(steps=100, target=target)

    def level_as_x0(x, t):  # a denoiser whose clean estimate is its noise level, whatever the sample
        x0 = t.float().reshape(-1, 1).expand_as(x)
        return x0 if target == "x0" else schedule.predict_eps(x0, x, t)

    samples, first = sample(level_as_x0, (3, 2), schedule, steps=5, generator=torch.Generator().manual_seed(0),
                            return_first=True)
    torch.testing.assert_close(first, torch.full((3, 2), 99.0), rtol=1e-4, atol=0)  # eps: divided by a small signal
    torch.testing.assert_close(samples, torch.zeros(3, 2), atol=1e-3, rtol=0)
    alone = sample(level_as_x0, (3, 2), schedule, steps=5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(alone, samples)


def test_timesteps_and_errors():
    schedule = NoiseSchedule(steps=1000)
    levels = timesteps(schedule, 50)
    assert levels[0] == 999 and levels[-1] == 0 and len(levels) == 50 and torch.all(levels[1:] < levels[:-1])
    with pytest.raises(ValueError, match="steps must be between 1 and the schedule's 1000"):
        timesteps(schedule, 0)
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        sample(gaussian_denoiser(schedule), (1, 1), schedule, sampler="euler")
