"""Rank histograms of the truth among ensemble members."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xdepthrecon.evaluation.ranks import rank_histogram


def _ensemble(members: int = 7, points: int = 20000, seed: int = 0) -> tuple[xr.DataArray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(members, 100, points // 100))
    return xr.DataArray(values, dims=("member", "latitude", "longitude")), rng


def test_a_truth_drawn_like_the_members_is_flat_and_one_outside_them_piles_up():
    members, rng = _ensemble()
    truth = xr.DataArray(rng.normal(size=(100, 200)), dims=("latitude", "longitude"))
    flat = rank_histogram(members, truth)
    assert flat.sizes["rank"] == 8 and flat.attrs["points"] == 20000
    np.testing.assert_allclose(flat.sum(), 1.0)
    np.testing.assert_allclose(flat, 1 / 8, atol=0.012)
    above = rank_histogram(members, truth + 100.0)
    assert float(above.isel(rank=-1)) == 1.0
    narrow = rank_histogram(0.2 * members, truth)  # too little spread: a U
    assert narrow.isel(rank=0) > 2 / 8 and narrow.isel(rank=-1) > 2 / 8 and narrow.isel(rank=4) < 1 / 16


def test_ties_are_broken_at_random_and_masked_or_missing_points_do_not_count():
    members = xr.DataArray(np.zeros((3, 50, 40)), dims=("member", "latitude", "longitude"))
    ties = rank_histogram(members, xr.zeros_like(members.isel(member=0)))
    np.testing.assert_allclose(ties, 0.25, atol=0.03)
    truth = xr.DataArray(np.ones((50, 40)), dims=("latitude", "longitude"))
    truth[0, 0] = np.nan
    where = xr.DataArray(np.arange(40) < 10, dims="longitude")
    counted = rank_histogram(members, truth, where=where)
    assert counted.attrs["points"] == 50 * 10 - 1 and float(counted.isel(rank=3)) == 1.0
    with pytest.raises(ValueError, match="no 'ensemble' dimension"):
        rank_histogram(members, truth, dim="ensemble")
