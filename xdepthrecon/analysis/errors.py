"""Calibrated uncertainty: the error a model makes, by depth and by how well the place is observed.

A diffusion ensemble is only as honest as its denoiser is trained: an under-trained network draws members
that hardly differ, and their spread says nothing about the error. The error model records, on validation
data the network did not train on, the mean squared error of the model's estimate at each level, binned
by a *predictor* of that error at each column and level:

- ``"support"``: the observation support of the column, ``log(1 + sum of Gaussian weights of the observed
  columns)`` at ``scale`` grid cells (0 far from any profile, large in a dense cluster), the same at every
  level;
- ``"analysis"``: the error variance of the model's departure analysis
  (:class:`~xdepthrecon.analysis.departures.DepartureAnalysis`) at that level, which knows the fitted
  covariances and where the profiles are. Each bin then holds the ratio of the error measured to the
  variance predicted, and the expected error is that ratio times the prediction, so it keeps growing
  where a new place or season makes the analysis predict more than validation ever saw.

``reconstruct`` reports the ensemble spread raised to that error where the spread is smaller, so the
stated uncertainty is at least what the model's own validation says (see
:class:`~xdepthrecon.diffusion.latent.LatentDiffusion`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xdepthrecon.stats.smoothing import observation_support


PREDICTORS = ("support", "analysis")


def predictor_values(predictor: str, observed: torch.Tensor, scale: float,
                     analysis_variance: torch.Tensor | None = None) -> torch.Tensor:
    """The error predictor ``(batch, 1 or levels, H, W)`` (see the module).

    Parameters
    ----------
    predictor
        ``"support"`` or ``"analysis"``.
    observed
        Observed columns (batch, 1, H, W).
    scale
        Length scale (grid cells) of the support.
    analysis_variance
        For ``"analysis"``, the analysis's error variance (batch, levels, H, W).
    """
    if predictor == "support":
        return observation_support(observed, scale)
    if analysis_variance is None:
        raise ValueError("this error model bins by the departure analysis's variance: pass analysis_variance")
    return analysis_variance


class ErrorModel(nn.Module):
    """Mean squared error (or its ratio to the predicted variance) per level in bins of a predictor of it
    (build with :meth:`fit`).

    Parameters
    ----------
    levels
        Depth levels of the errors.
    bins
        Number of bins (per level, at quantiles of the predictor).
    scale
        Length scale (grid cells) of the observation support.
    predictor
        ``"support"`` or ``"analysis"`` (see the module).
    """

    def __init__(self, levels: int, bins: int, scale: float, predictor: str = "support") -> None:
        super().__init__()
        if predictor not in PREDICTORS:
            raise ValueError(f"predictor={predictor!r} is not one of {PREDICTORS}")
        self.scale, self.predictor = float(scale), predictor
        self.register_buffer("edges", torch.zeros(bins - 1, levels))
        self.register_buffer("variance", torch.zeros(bins, levels))

    @property
    def config(self) -> dict[str, float | int | str]:
        """Constructor arguments, JSON-serialisable."""
        return {"levels": self.variance.shape[1], "bins": self.variance.shape[0], "scale": self.scale,
                "predictor": self.predictor}

    @classmethod
    def fit(cls, predicted: np.ndarray, squared_error: np.ndarray, scale: float, bins: int = 8,
            predictor: str = "support") -> ErrorModel:
        """Bin columns by quantiles of the predictor, level by level, and average their squared errors.

        Parameters
        ----------
        predicted
            The predictor at each validation column, ``(columns,)`` (the same at every level) or
            ``(columns, levels)`` (:func:`predictor_values`).
        squared_error
            ``(columns, levels)`` squared error of the model's estimate, NaN where the level is not ocean.
        scale, bins, predictor
            See the class. A bin no column falls in takes its level's mean (or, for ``"analysis"``, its
            level's overall ratio of squared error to predicted variance).
        """
        squared_error = np.asarray(squared_error, dtype=np.float64)
        predicted = np.asarray(predicted, dtype=np.float64)
        if predicted.ndim == 1 and squared_error.ndim == 2 and len(predicted) == len(squared_error):
            predicted = np.broadcast_to(predicted[:, None], squared_error.shape)
        if predicted.shape != squared_error.shape or squared_error.ndim != 2 or squared_error.shape[0] == 0:
            raise ValueError(f"need one predictor per column (and level) of squared errors, got {predicted.shape} "
                             f"and {squared_error.shape}")
        levels = squared_error.shape[1]
        usable = np.isfinite(squared_error) & np.isfinite(predicted)
        # per bin: the squared error over the weight, 1 per column (a mean) or its predicted variance (a ratio)
        weight_of = (lambda values: values) if predictor == "analysis" else np.ones_like
        edges, sums, weights = np.zeros((bins - 1, levels)), np.zeros((bins, levels)), np.zeros((bins, levels))
        for level in range(levels):
            values, errors = predicted[usable[:, level], level], squared_error[usable[:, level], level]
            if values.size:
                edges[:, level] = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
            index = np.searchsorted(edges[:, level], values, side="right")
            weights[:, level] = np.bincount(index, weights=weight_of(values), minlength=bins)
            sums[:, level] = np.bincount(index, weights=errors, minlength=bins)
        overall = np.where(usable.any(axis=0), sums.sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-12), np.nan)
        overall = np.where(np.isfinite(overall), overall, np.nanmean(overall) if np.isfinite(overall).any() else 0.0)
        table = np.where(weights > 0, sums / np.maximum(weights, 1e-12), overall)
        model = cls(levels, bins, scale, predictor)
        model.edges.copy_(torch.from_numpy(edges).float())
        model.variance.copy_(torch.from_numpy(table).float())
        return model

    def expected_variance(self, observed: torch.Tensor, analysis_variance: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated error variance ``(batch, levels, H, W)`` (arguments as :func:`predictor_values`)."""
        values = predictor_values(self.predictor, observed, self.scale, analysis_variance)
        levels = self.variance.shape[1]
        values = values.expand(-1, levels, -1, -1).permute(1, 0, 2, 3).reshape(levels, -1).contiguous()
        index = torch.searchsorted(self.edges.T.contiguous(), values, right=True)
        expected = torch.gather(self.variance.T, 1, index)
        if self.predictor == "analysis":  # the bin's ratio of error to predicted variance, times the prediction
            expected = expected * values
        return expected.reshape(levels, len(observed), *observed.shape[-2:]).permute(1, 0, 2, 3)
