"""Noise schedules and the x0 / eps / v conversions."""

from __future__ import annotations

import pytest
import torch

from xdepthrecon.diffusion import NoiseSchedule


@pytest.mark.parametrize("kind", ["cosine", "linear", "sigmoid"])
def test_alpha_bar_decreases_from_one_to_nearly_zero(kind):
    schedule = NoiseSchedule(kind, steps=1000)
    alpha_bar = schedule.alpha_bar
    assert alpha_bar.shape == (1000,)
    assert torch.all(alpha_bar[1:] < alpha_bar[:-1])
    assert alpha_bar[0] > 0.99 and alpha_bar[-1] < 0.01


@pytest.mark.parametrize("target", ["x0", "eps", "v"])
def test_target_conversions_recover_x0_and_eps(target):
    schedule = NoiseSchedule("cosine", steps=100, target=target)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 3, 4, 4, generator=generator, dtype=torch.float64)
    noise = torch.randn(8, 3, 4, 4, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 5, 20, 50, 70, 90, 98, 99])
    x_t = schedule.add_noise(x0, noise, t)
    output = schedule.training_target(x0, noise, t)
    torch.testing.assert_close(schedule.predict_x0(output, x_t, t), x0)
    torch.testing.assert_close(schedule.predict_eps(x0, x_t, t), noise)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown schedule kind 'cos'"):
        NoiseSchedule("cos")
    with pytest.raises(ValueError, match="unknown prediction target 'score'"):
        NoiseSchedule(target="score")


def test_noisy_draws_follow_a_probability_rising_to_the_noisiest_level():
    schedule = NoiseSchedule("cosine", steps=10)
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(schedule.draw_levels(200_000, generator, "noisy"), minlength=10).double()
    expected = torch.arange(1, 11, dtype=torch.float64) - 0.5  # p(t) ~ t + 1/2 on the continuum, per bin
    torch.testing.assert_close(counts / counts.sum(), expected / expected.sum(), atol=3e-3, rtol=0)
    uniform = torch.bincount(schedule.draw_levels(200_000, generator), minlength=10).double()
    torch.testing.assert_close(uniform / uniform.sum(), torch.full((10,), 0.1, dtype=torch.float64), atol=3e-3,
                               rtol=0)
    with pytest.raises(ValueError, match="choose one of"):
        schedule.draw_levels(4, generator, "loud")
