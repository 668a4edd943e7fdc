"""Horizontal interpolation on the sphere."""

from __future__ import annotations

import numpy as np

from xdepthrecon.stats.interpolation import interpolate_horizontal


def test_nearest_wraps_longitude():
    filled = interpolate_horizontal(np.array([[[1.0, np.nan, np.nan, 3.0]]]), np.ones((1, 1, 4), bool),
                                    np.array([0.0]), np.array([-135.0, -45.0, 45.0, 135.0]), method="nearest")
    np.testing.assert_allclose(filled[0, 0], [1.0, 1.0, 3.0, 3.0])
