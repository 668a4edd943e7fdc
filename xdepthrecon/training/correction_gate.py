"""The gate of the autoencoder's learned correction, fitted on regions held out from training.

With the linear EOF path, the autoencoder's output is ``EOF truncation + gate * correction`` per level
(:class:`~xdepthrecon.models.autoencoder.DepthBandAutoencoder`). The correction is learned on the training
regions; on water it has not seen it may help or hurt. Measured with the North Atlantic held out of the
bundled atlas, it helped above 300 m but made 300-1000 m worse than the EOFs alone (1.06 to 1.4 times their
error), although it helped in the regions validation had held out; on a later run of the eddying nature run
it helped at every depth. So the gate is
chosen for the worst case: the held-out regions are cut into groups of cells (pooled over time), and at each
level the gate is the value in [0, 1] whose worst ratio ``error(EOF + gate * correction) / error(EOF)`` over
the groups is smallest (the smallest such value on ties). It stays open where the correction helps in every
group and closes, returning exactly the EOF truncation at that level, where it hurts somewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.training.splits import Window

__all__ = ["fit_correction_gate", "GATE_VALUES"]

#: The gate values tried at each level.
GATE_VALUES = np.linspace(0.0, 1.0, 21)
#: A group enters a level's worst case only with at least this many valid values at that level.
MIN_VALUES = 64


def fit_correction_gate(model: DepthBandAutoencoder, thetao: xr.DataArray, windows: Sequence[Window],
                        group_cells: int) -> np.ndarray:
    """The per-level gate of ``model``'s correction, chosen on ``windows`` of ``thetao`` (see the module docstring).

    Parameters
    ----------
    model
        An autoencoder with the linear path; its current gate is ignored.
    thetao
        The canonical temperature field the windows index, ``(time, depth, latitude, longitude)``.
    windows
        Held-out windows (regions the correction was not trained on).
    group_cells
        Side (cells) of the groups whose worst case sets the gate; a group pools its cells over time.

    Returns
    -------
    numpy.ndarray
        The gate, one value in [0, 1] per level; 0 at levels no group holds enough values to judge.
    """
    columns_of_groups = -(-thetao.sizes["longitude"] // group_cells)
    groups = (-(-thetao.sizes["latitude"] // group_cells)) * columns_of_groups
    moments = np.zeros((4, model.in_channels, groups))  # sums of r*r, r*c, c*c and valid values, per group
    for window in windows:
        block = thetao.isel(time=window.time, latitude=window.latitude, longitude=window.longitude)
        residual, correction = _parts(model, np.asarray(block.values, dtype=np.float32))
        rows = (window.rows[0] + np.arange(residual.shape[1])) // group_cells
        columns = (window.columns[0] + np.arange(residual.shape[2])) // group_cells
        group = (rows[:, None] * columns_of_groups + columns[None, :]).ravel()
        valid = ~np.isnan(residual)
        r, c = np.where(valid, residual, 0.0), np.where(valid, correction, 0.0)
        for moment, term in zip(moments, (r * r, r * c, c * c, valid)):
            for level, values in enumerate(term.reshape(model.in_channels, -1)):
                moment[level] += np.bincount(group, weights=values, minlength=groups)
    seen = moments[3].any(axis=0)
    return _minimax_gate(list(np.moveaxis(moments[:, :, seen], 2, 0)), model.in_channels)


def _parts(model: DepthBandAutoencoder, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the EOF truncation misses and the ungated correction, in normalised units, ``(level, H, W)``."""
    device = model.mean.device
    x = torch.from_numpy(values).to(device)[None]
    with torch.no_grad():
        z = model.encode(x)
        linear = model.decode_linear(z.to(model.decode_linear.weight.dtype))
        correction = model.to_output(model.decoder(z.to(model.to_output.weight.dtype)))
        residual = model.normalize(x) - linear
    return residual[0].double().cpu().numpy(), correction[0].double().cpu().numpy()


def _minimax_gate(groups: list[np.ndarray], levels: int) -> np.ndarray:
    """Per level, the gate value whose worst ratio of squared errors over ``groups`` is smallest."""
    gate = np.zeros(levels)
    if not groups:
        return gate
    srr, src, scc, count = np.moveaxis(np.stack(groups), 1, 0)  # each (group, level)
    g = GATE_VALUES[:, None, None]
    ratio = (srr - 2.0 * g * src + g**2 * scc) / np.where(srr > 0, srr, 1.0)
    judged = (count >= MIN_VALUES) & (srr > 0)
    worst = np.where(judged, ratio, -np.inf).max(axis=1)  # (gate value, level)
    enough = judged.any(axis=0)
    gate[enough] = GATE_VALUES[np.argmin(worst[:, enough], axis=0)]
    return gate
