"""The depth levels of a model's training data: per-level statistics and the check that new data has those levels."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

__all__ = ["as_numpy", "check_levels", "level_statistics"]

#: Two depth levels are the same level when they agree to this tolerance (m); float32 files round depths.
_DEPTH_RTOL, _DEPTH_ATOL = 1e-6, 1e-3
#: Most differing levels named in an error.
_LISTED = 8


def as_numpy(values: Any) -> np.ndarray:
    """``values`` (a tensor on any device, an array, a sequence or a scalar) as a numpy array."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def level_statistics(x: Any, mask: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-level mean and standard deviation of data with gaps.

    Parameters
    ----------
    x
        Values shaped ``(..., level, H, W)`` (numpy, torch or an xarray DataArray in canonical order);
        NaN marks missing values.
    mask
        Optional validity mask broadcastable to ``x`` (True: valid).

    Returns
    -------
    mean, std : numpy.ndarray
        float64 arrays, one value per level, as ``np.nanmean``/``np.nanstd`` (ddof 0) over all other
        axes; NaN for a level without valid values.
    """
    values = np.array(as_numpy(x), dtype=np.float64)
    if values.ndim < 3:
        raise ValueError(f"x has shape {values.shape}; expected (..., level, H, W)")
    if mask is not None:
        values = np.where(np.broadcast_to(as_numpy(mask).astype(bool), values.shape), values, np.nan)
    per_level = np.moveaxis(values, -3, 0).reshape(values.shape[-3], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_level, axis=1), np.nanstd(per_level, axis=1)


def check_levels(trained: np.ndarray, given: Any) -> None:
    """Raise a ValueError, naming the levels that differ, unless ``given`` (m) are the ``trained`` levels (m)."""
    given = np.asarray(as_numpy(given), dtype=np.float64)
    span = f"{trained[0]:g} ... {trained[-1]:g} m"
    if given.shape != trained.shape:
        raise ValueError(
            f"the data has {given.size} depth levels but the autoencoder was trained on {trained.size} "
            f"({span}); select those levels, e.g. cube.sel(depth=ae.depth, method='nearest'), "
            "or train an autoencoder on the data's levels"
        )
    differ = np.flatnonzero(~np.isclose(given, trained, rtol=_DEPTH_RTOL, atol=_DEPTH_ATOL))
    if differ.size:
        listed = "; ".join(f"level {i}: data {given[i]:g} m, trained {trained[i]:g} m" for i in differ[:_LISTED])
        more = f" (and {differ.size - _LISTED} more)" if differ.size > _LISTED else ""
        raise ValueError(
            f"{differ.size} of {trained.size} depth levels differ from those the autoencoder was trained on: "
            f"{listed}{more}; interpolate the data to them (cube.interp(depth=ae.depth)) "
            "or train an autoencoder on the data's levels"
        )
