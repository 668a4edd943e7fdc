"""Covariance kernels: the local GP prediction near and far from its sources."""

from __future__ import annotations

import numpy as np
import pytest

from xdepthrecon.stats.covariance import KERNELS, Covariance, predict
from xdepthrecon.stats.geometry import unit_vectors


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
