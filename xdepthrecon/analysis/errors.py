"""Calibrated uncertainty: the error an estimate makes, by depth and by what the analysis predicts of it.

The optimal interpolation of the departures (:class:`~xdepthrecon.analysis.departures.DepartureAnalysis`)
states an error variance at each column and level: small near profiles, the prior far from them. It
knows where the profiles are, but not how wrong the background and the SST regression are in a region
they were not fitted to. The error model records, on validation data, the ratio of the squared error
an estimate really made to the variance the analysis predicted, per level and per bin of that variance;
the expected error is that ratio (interpolated between the bins, so it has no steps) times the prediction, so
it keeps growing where a new place or season makes the analysis predict more than validation ever saw.

The classical analysis is calibrated against its own guess; the diffusion model against its network's gated
estimate. Both report this error as their spread; the diffusion model's members are scaled to it. Where the
calibration data had SST gaps (clouds), the cells under them can get their own ratios (``gaps``): there the
guess has no SST term and the error's share that the analysis foresees is another.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Columns per bin under SST gaps (and with SST) that :meth:`ErrorModel.fit` needs to fit the two apart.
MIN_GAP_COLUMNS = 50


class ErrorModel(nn.Module):
    """Ratio of the squared error to the predicted variance, per level in bins of the predicted variance
    (build with :meth:`fit`).

    Parameters
    ----------
    levels
        Depth levels of the errors.
    bins
        Number of bins (per level, at quantiles of the predicted variance).
    gaps
        Hold a second model, :attr:`under_gaps`, for the cells whose SST is missing.

    Attributes
    ----------
    under_gaps
        The :class:`ErrorModel` of the cells whose SST is missing (set by :meth:`fit`), or None: this one holds
        there too.
    """

    def __init__(self, levels: int, bins: int, gaps: bool = False) -> None:
        super().__init__()
        self.register_buffer("edges", torch.zeros(bins - 1, levels))
        self.register_buffer("ratio", torch.zeros(bins, levels))
        self.under_gaps = ErrorModel(levels, bins) if gaps else None

    @property
    def config(self) -> dict[str, int | bool]:
        """Constructor arguments, JSON-serialisable."""
        return {"levels": self.ratio.shape[1], "bins": self.ratio.shape[0], "gaps": self.under_gaps is not None}

    @classmethod
    def fit(cls, predicted: np.ndarray, squared_error: np.ndarray, bins: int = 8,
            gaps: np.ndarray | None = None) -> ErrorModel:
        """Bin columns by quantiles of the predicted variance, level by level, and store each bin's summed
        squared error over its summed predicted variance.

        With ``gaps`` holding at least :data:`MIN_GAP_COLUMNS` per bin (and as many columns with SST), the
        columns with SST set this model and those under the gaps its :attr:`under_gaps`; else one model holds
        for all.

        Parameters
        ----------
        predicted
            ``(columns, levels)`` variance the analysis predicted at each validation column.
        squared_error
            ``(columns, levels)`` squared error of the estimate, NaN where the level is not ocean.
        bins
            See the class. A bin no column falls in takes its level's overall ratio (or, for a level
            with no column, the mean over the levels).
        gaps
            ``(columns,)`` True where the column's SST was missing; None: not known.
        """
        if gaps is not None:
            gaps = np.asarray(gaps, dtype=bool)
            if gaps.shape != np.shape(predicted)[:1]:
                raise ValueError(f"need one gap flag per column, got {gaps.shape} for {np.shape(predicted)}")
            if min(gaps.sum(), (~gaps).sum()) >= MIN_GAP_COLUMNS * bins:
                model = cls.fit(np.asarray(predicted)[~gaps], np.asarray(squared_error)[~gaps], bins)
                model.under_gaps = cls.fit(np.asarray(predicted)[gaps], np.asarray(squared_error)[gaps], bins)
                return model
        squared_error = np.asarray(squared_error, dtype=np.float64)
        predicted = np.asarray(predicted, dtype=np.float64)
        if predicted.shape != squared_error.shape or squared_error.ndim != 2 or squared_error.shape[0] == 0:
            raise ValueError(f"need one predicted variance per column and level of squared errors, got "
                             f"{predicted.shape} and {squared_error.shape}")
        levels = squared_error.shape[1]
        usable = np.isfinite(squared_error) & np.isfinite(predicted)
        edges, sums, weights = np.zeros((bins - 1, levels)), np.zeros((bins, levels)), np.zeros((bins, levels))
        for level in range(levels):
            values, errors = predicted[usable[:, level], level], squared_error[usable[:, level], level]
            if values.size:
                edges[:, level] = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
            index = np.searchsorted(edges[:, level], values, side="right")
            weights[:, level] = np.bincount(index, weights=values, minlength=bins)
            sums[:, level] = np.bincount(index, weights=errors, minlength=bins)
        overall = np.where(usable.any(axis=0), sums.sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-12), np.nan)
        overall = np.where(np.isfinite(overall), overall, np.nanmean(overall) if np.isfinite(overall).any() else 1.0)
        table = np.where(weights > 0, sums / np.maximum(weights, 1e-12), overall)
        model = cls(levels, bins)
        model.edges.copy_(torch.from_numpy(edges).float())
        model.ratio.copy_(torch.from_numpy(table).float())
        return model

    def expected_variance(self, predicted: torch.Tensor, gaps: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated error variance ``(batch, levels, H, W)`` from the predicted variance of the same shape;
        :attr:`under_gaps`'s in the cells of ``gaps`` (batch, H, W: True where the SST is missing), if both.

        The ratio is interpolated linearly in the predicted variance between the bins' centres (the first and
        last bins' inner edges outside them, where it stays flat), so the stated error has no steps where the
        predicted variance crosses a bin edge.
        """
        levels = self.ratio.shape[1]
        if predicted.shape[1] != levels:
            raise ValueError(f"the error model has {levels} levels; the predicted variance has {predicted.shape[1]}")
        values = predicted.permute(1, 0, 2, 3).reshape(levels, -1).contiguous()
        centres = self._centres().T.contiguous()
        right = torch.searchsorted(centres, values, right=True)
        low, high = (right - 1).clamp(0, centres.shape[1] - 1), right.clamp(0, centres.shape[1] - 1)
        start, stop = torch.gather(centres, 1, low), torch.gather(centres, 1, high)
        span = stop - start
        weight = torch.where(span > 0, (values - start) / span.clamp(min=1e-30), 0.0).clamp(0.0, 1.0)
        ratio = self.ratio.T
        expected = torch.lerp(torch.gather(ratio, 1, low), torch.gather(ratio, 1, high), weight) * values
        expected = expected.reshape(levels, len(predicted), *predicted.shape[-2:]).permute(1, 0, 2, 3)
        if self.under_gaps is None or gaps is None:
            return expected
        return torch.where(gaps.to(expected.device).unsqueeze(1), self.under_gaps.expected_variance(predicted),
                           expected)

    def _centres(self) -> torch.Tensor:
        """Where each bin's ratio holds exactly (bins, levels): the midpoints of its edges, and the inner edge
        of the first and the last bin."""
        edges = self.edges
        if len(edges) == 0:
            return torch.zeros_like(self.ratio)
        middles = (edges[1:] + edges[:-1]) / 2.0
        return torch.cat([edges[:1], middles, edges[-1:]])
