"""Tests of xdepthrecon.evaluation.bands: the one rule of which levels a depth band holds."""

from __future__ import annotations

import numpy as np

from xdepthrecon.evaluation.bands import default_bands, in_band


def test_default_bands_cover_the_levels():
    assert default_bands([0.5, 50.0, 250.0, 900.0]) == [(0.0, 100.0), (100.0, 300.0), (300.0, 1000.0)]
    assert default_bands(np.geomspace(0.5, 5000.0, 20)) == [(0.0, 100.0), (100.0, 300.0), (300.0, 1000.0),
                                                            (1000.0, 2000.0), (2000.0, 5000.0)]
    assert default_bands([0.5, 10.0, 30.0]) == [(0.0, 100.0)]
    assert default_bands([5.0, 2000.0]) == [(0.0, 100.0), (1000.0, 2000.0)]
    assert default_bands([0.5, 200.0, 1000.0]) == [(0.0, 100.0), (100.0, 300.0), (300.0, 1000.0)]


def test_a_band_holds_its_top_and_only_the_last_band_its_bottom():
    depth = [0.0, 50.0, 100.0, 300.0]
    np.testing.assert_array_equal(in_band(depth, (0.0, 100.0)), [True, True, False, False])
    np.testing.assert_array_equal(in_band(depth, (100.0, 300.0)), [False, False, True, False])
    np.testing.assert_array_equal(in_band(depth, (100.0, 300.0), last=True), [False, False, True, True])
