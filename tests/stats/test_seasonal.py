"""Seasonal fits: the harmonic least squares and its fallbacks."""

from __future__ import annotations

import numpy as np

from xdepthrecon.stats.seasonal import fit_seasonal


def test_fit_seasonal_falls_back_to_the_mean_when_ill_posed():
    design = np.stack([np.ones(4), np.cos([0.0, 1.0, 2.0, 3.0]), np.sin([0.0, 1.0, 2.0, 3.0])], axis=1)
    values = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [5.0, np.nan, np.nan], [7.0, np.nan, np.nan]])
    coefficients = fit_seasonal(values, design)
    assert np.isfinite(coefficients[:, 0]).all()
    np.testing.assert_allclose(coefficients[:, 1], [2.0, 0.0, 0.0])
    assert np.isnan(coefficients[:, 2]).all()
