"""A field split into horizontal scale bands: differences of Gaussian means an octave apart.

A surface anomaly reaches down differently at different scales: the broad, slow part of an SST anomaly sits
on the whole water column, while its small scales (the mixed layer's own anomalies, the satellite's noise)
stay at the surface. A regression on the SST anomaly as one number per cell carries its small scales down
as strongly as its broad ones. Split into bands, each band takes its own slope.

With Gaussian means ``m_j`` of the field at length scales ``s_1 < s_2 < ... < s_K`` (km) and ``m_0`` the
field itself, the bands are ``m_0 - m_1, m_1 - m_2, ..., m_(K-1) - m_K, m_K``: they sum to the field. The
means are over valid cells only, so a cloud gap or a coast does not pull them to zero; in an invalid cell
``m_0`` is taken as ``m_1`` (its smallest band is 0 and the others fill it from around), and where no valid
cell lies within reach of a scale, that mean is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from xdepthrecon.stats.smoothing import cells_per_scale, gaussian_mean


def octave_scales_km(latitude: np.ndarray, longitude: np.ndarray, largest_km: float) -> tuple[float, ...]:
    """Length scales (km) an octave apart, from the grid's spacing up to ``largest_km``: ``spacing * 2**k``
    for ``k = 0, 1, ...``, with the spacing (km) the mean of the grid's row and column spacings at its mean
    latitude. Empty when ``largest_km`` is below the spacing (the grid resolves no band)."""
    per_km = cells_per_scale(1.0, torch.tensor(np.asarray(latitude, np.float64)),
                             torch.tensor(np.asarray(longitude, np.float64)))
    spacing = 0.5 * (1.0 / per_km[0] + 1.0 / per_km[1])
    if not largest_km >= spacing:
        return ()
    return tuple(spacing * 2.0**k for k in range(int(math.floor(math.log2(largest_km / spacing) + 1e-9)) + 1))


def scale_bands(field: torch.Tensor, valid: torch.Tensor, scales_km: Sequence[float], *, latitude: np.ndarray,
                longitude: np.ndarray, periodic: bool = False) -> torch.Tensor:
    """The bands of ``field`` (batch, H, W) at ``scales_km`` (increasing; see the module docstring):
    (batch, len(scales_km) + 1, H, W), finest first. ``valid`` (batch, H, W) marks the cells that hold a value;
    ``latitude`` (H,) and ``longitude`` (W,) are the grid's in degrees; ``periodic`` wraps the means in
    longitude (a global grid)."""
    valid = valid.to(torch.bool) & torch.isfinite(field)
    values = torch.where(valid, field, 0.0)[:, None]
    weights = valid.to(values.dtype)[:, None]
    lat, lon = torch.tensor(np.asarray(latitude, np.float64)), torch.tensor(np.asarray(longitude, np.float64))
    means = [gaussian_mean(values, weights, cells_per_scale(scale, lat, lon), periodic=periodic)
             for scale in scales_km]
    finest = torch.where(weights > 0, values, means[0]) if means else values
    levels = [finest, *means]
    bands = [levels[j] - levels[j + 1] for j in range(len(means))] + [levels[-1]]
    return torch.cat(bands, dim=1)
