"""Continuous ranked probability scores of ensembles and Gaussians, point by point."""

from __future__ import annotations

import numpy as np
import scipy.special
import xarray as xr

from xdepthrecon.evaluation.predictions import MEMBER


def crps_ensemble(members: xr.DataArray, truth: xr.DataArray, fair: bool = False, dim: str = MEMBER) -> xr.DataArray:
    """CRPS of an ensemble at every point: mean_i |X_i - y| - 1/(2 M^2) sum_ij |X_i - X_j|.

    The pair sum is computed from the sorted members in O(M log M):
    sum_ij |X_i - X_j| = 2 sum_k (2k - M + 1) X_(k), k = 0 .. M - 1.

    Parameters
    ----------
    members
        Ensemble members along ``dim``.
    truth
        The verifying values, broadcastable against ``members`` without ``dim``.
    fair
        Divide the pair sum by 2 M (M - 1) instead of 2 M^2: the fair CRPS (Ferro 2014), which
        estimates the CRPS of the distribution the members were drawn from.
    dim
        Name of the ensemble dimension.

    Returns
    -------
    xarray.DataArray
        The CRPS (units of the data), NaN where a member or the truth is NaN.
    """
    return xr.apply_ufunc(
        _crps_ensemble_kernel, members, truth, kwargs={"fair": fair},
        input_core_dims=[[dim], []], dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True},
    )


def crps_gaussian(mean: xr.DataArray, std: xr.DataArray, truth: xr.DataArray) -> xr.DataArray:
    """CRPS of a Gaussian N(mean, std^2) at every point (Gneiting et al. 2005); |mean - truth| where std = 0.

    Parameters
    ----------
    mean, std
        The Gaussian's mean and standard deviation (std >= 0).
    truth
        The verifying values.

    Returns
    -------
    xarray.DataArray
        sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)] with z = (truth - mean) / sigma.
    """
    sigma = std.where(std > 0)
    z = (truth - mean) / sigma
    density = np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi)
    crps = sigma * (z * (2.0 * scipy.special.ndtr(z) - 1.0) + 2.0 * density - 1.0 / np.sqrt(np.pi))
    return xr.where(std > 0, crps, abs(truth - mean))


def _crps_ensemble_kernel(members: np.ndarray, truth: np.ndarray, fair: bool) -> np.ndarray:
    size = members.shape[-1]
    skill = np.abs(members - truth[..., None]).mean(-1)
    ranks = 2.0 * np.arange(size) - size + 1.0
    pair_sum = 2.0 * (np.sort(members, axis=-1) * ranks).sum(-1)
    return skill - pair_sum / (2.0 * size * (size - 1 if fair else size))
