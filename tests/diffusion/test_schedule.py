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
