"""Rank histograms: is the truth a plausible member of the ensemble?"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdepthrecon.evaluation.predictions import MEMBER


def rank_histogram(members: xr.DataArray, truth: xr.DataArray, *, where: xr.DataArray | None = None,
                   dim: str = MEMBER, seed: int = 0) -> xr.DataArray:
    """The share of points at which the truth has each rank among the ``M`` members.

    The rank of a point is the number of members below the truth, from 0 to ``M``; members equal to the truth
    are ties, broken uniformly at random (``seed``). For a reliable ensemble every rank is equally likely
    (a flat histogram at ``1 / (M + 1)``): a U shape means too little spread, a dome too much, a slope a bias.
    Neighbouring points are correlated, so a few fields give a noisy histogram.

    Parameters
    ----------
    members
        The ensemble, with a ``dim`` dimension.
    truth
        The truth, broadcastable against one member.
    where
        Boolean, broadcastable against the truth: the points counted (e.g. columns without a profile).
        Points where the truth or any member is NaN are left out.
    dim
        The members' dimension.
    seed
        Seed of the random tie-breaking.

    Returns
    -------
    xarray.DataArray
        ``(rank,)`` shares summing to 1, with the number of points counted in ``attrs["points"]``.
    """
    if dim not in members.dims:
        raise ValueError(f"members have no {dim!r} dimension (dims {members.dims}); pass dim= the members' dimension")
    size = members.sizes[dim]
    members, truth = xr.broadcast(members, truth)
    truth = truth.isel({dim: 0}, drop=True)
    valid = truth.notnull() & members.notnull().all(dim)
    if where is not None:
        valid = valid & where.astype(bool)
    valid = valid.broadcast_like(truth).transpose(*truth.dims).values
    ensemble = members.transpose(dim, *truth.dims).values[:, valid]
    target = truth.values[valid]
    below, ties = (ensemble < target).sum(axis=0), (ensemble == target).sum(axis=0)
    ranks = below + np.floor(np.random.default_rng(seed).random(target.size) * (ties + 1)).astype(int)
    counts = np.bincount(ranks, minlength=size + 1).astype(np.float64)
    shares = counts / counts.sum() if counts.sum() > 0 else np.full(size + 1, np.nan)
    return xr.DataArray(shares, dims="rank", coords={"rank": np.arange(size + 1)}, name="rank_histogram",
                        attrs={"points": int(target.size), "long_name": "share of points with each rank of the truth"})
