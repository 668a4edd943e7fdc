"""Calibrated uncertainty: the error a model makes, by depth and by how well the neighbourhood is observed.

A diffusion ensemble is only as honest as its denoiser is trained: an under-trained network draws members
that hardly differ, and their spread says nothing about the error. The error model records, on validation
data the network did not train on, the mean squared error of the model's estimate at each level, binned
by the *observation support* of the column: ``log(1 + sum of Gaussian weights of the observed columns)``
at ``scale`` grid cells (0 far from any profile, large in a dense cluster). ``reconstruct`` then reports
the ensemble spread raised to that error where the spread is smaller, so the stated uncertainty is at
least what the model's own validation says (see :class:`~xdepthrecon.diffusion.latent.LatentDiffusion`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xdepthrecon.diffusion.first_guess import observation_support


class ErrorModel(nn.Module):
    """Mean squared error per level in bins of observation support (build with :meth:`fit`).

    Parameters
    ----------
    levels
        Depth levels of the errors.
    bins
        Number of support bins.
    scale
        Length scale (grid cells) of the observation support.
    """

    def __init__(self, levels: int, bins: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.register_buffer("edges", torch.zeros(bins - 1))
        self.register_buffer("variance", torch.zeros(bins, levels))

    @property
    def config(self) -> dict[str, float | int]:
        """Constructor arguments, JSON-serialisable."""
        return {"levels": self.variance.shape[1], "bins": self.variance.shape[0], "scale": self.scale}

    @classmethod
    def fit(cls, support: np.ndarray, squared_error: np.ndarray, scale: float, bins: int = 8) -> ErrorModel:
        """Bin columns by support quantiles and average their squared errors per level.

        Parameters
        ----------
        support
            ``(columns,)`` observation support of each validation column.
        squared_error
            ``(columns, levels)`` squared error of the model's estimate, NaN where the level is not ocean.
        scale, bins
            Support length scale (cells) and number of bins (fewer when the supports do not spread over
            that many distinct quantiles).
        """
        support = np.asarray(support, dtype=np.float64)
        squared_error = np.asarray(squared_error, dtype=np.float64)
        if support.ndim != 1 or squared_error.shape[0] != support.size or support.size == 0:
            raise ValueError(f"need one support per column of squared errors, got {support.shape} and "
                             f"{squared_error.shape}")
        edges = np.unique(np.quantile(support, np.linspace(0, 1, bins + 1)[1:-1]))
        index = np.searchsorted(edges, support, side="right")
        overall = np.nanmean(squared_error, axis=0)
        overall = np.where(np.isfinite(overall), overall, np.nanmean(squared_error) if np.isfinite(squared_error).any()
                           else 0.0)
        table = np.empty((edges.size + 1, squared_error.shape[1]))
        for b in range(edges.size + 1):
            rows = squared_error[index == b]
            counts = np.isfinite(rows).sum(axis=0)
            sums = np.nansum(rows, axis=0)
            table[b] = np.where(counts > 0, sums / np.maximum(counts, 1), overall)  # empty cell: the level's mean
        model = cls(squared_error.shape[1], edges.size + 1, scale)
        model.edges.copy_(torch.from_numpy(edges).float())
        model.variance.copy_(torch.from_numpy(table).float())
        return model

    def expected_variance(self, observed: torch.Tensor) -> torch.Tensor:
        """Calibrated error variance ``(batch, levels, H, W)`` for observed columns ``(batch, 1, H, W)``."""
        support = observation_support(observed, self.scale)[:, 0]
        index = torch.bucketize(support, self.edges, right=True)
        return self.variance[index].permute(0, 3, 1, 2)
