"""Correlation kernels: their closed forms, and every level computed alike however the levels are grouped."""

from __future__ import annotations

import math

import pytest
import torch

from xdepthrecon.stats import kernels
from xdepthrecon.stats.kernels import KERNELS, level_signals


def test_kernels_are_their_closed_forms():
    distance = torch.tensor([0.0, 100.0, 250.0], dtype=torch.float64)
    s = math.sqrt(3.0) * distance / 100.0
    torch.testing.assert_close(KERNELS["matern32"](distance, 100.0), (1 + s) * torch.exp(-s), rtol=1e-13, atol=0)
    torch.testing.assert_close(KERNELS["exponential"](distance, 100.0), torch.exp(-distance / 100.0))
    torch.testing.assert_close(KERNELS["gaussian"](distance, 100.0), torch.exp(-0.5 * (distance / 100.0) ** 2))


@pytest.mark.parametrize("cached", [1, 200, 1 << 17])  # one level per pass, a few, all of a kernel's run
def test_level_signals_equal_each_level_alone(monkeypatch, cached):
    monkeypatch.setattr(kernels, "CACHED_VALUES", cached)
    distance = torch.rand(3, 5, 7, dtype=torch.float64) * 900.0
    names = ["matern32", "matern32", "gaussian", "exponential", "exponential", "exponential", "matern32"]
    lengths, variances = [100.0 + 50.0 * i for i in range(7)], [0.5 + i for i in range(7)]
    signals = level_signals(distance, names, lengths, variances)
    assert signals.shape == (3, 7, 5, 7) and signals.dtype == torch.float64
    for level, (name, length, variance) in enumerate(zip(names, lengths, variances)):
        torch.testing.assert_close(signals[:, level], variance * KERNELS[name](distance, length), rtol=1e-13, atol=0)
