"""Objective analysis of the observations' departures from the background.

The classical analysis (:class:`~xdepthrecon.analysis.classical.Analysis`) builds its guess in degC from
the seasonal background, the SST's departure carried down by local slopes, and the observations'
remaining departures spread over the grid level by level. A :class:`DepartureAnalysis`
spreads them by optimal interpolation: at each level the departures are a Gaussian process in the
horizontal with a Matern-3/2 (or exponential, Gaussian) covariance plus a nugget, whose length scale and
variances were fitted by maximum likelihood
(:func:`~xdepthrecon.stats.covariance.fit_levels`) to the departures met in training, measured against
backgrounds fitted without the region (what a new region sees). Each
observation then weighs by how much it says that its neighbours do not: clustered profiles share their
weight, and the noise ratio sets how closely the analysis draws to each. Prediction is local and exact
(:func:`~xdepthrecon.stats.covariance.predict`): square tiles of ``tile`` cells each use
their ``neighbours`` nearest observed columns, with distances through the Earth in km, so the analysis
means the same at any grid spacing; neighbouring tiles overlap by ``overlap`` cells and are blended there, so
neither the mean nor the stated variance steps at their edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from xdepthrecon.stats.covariance import KERNELS, Covariance, blended_tiles, fit_levels, predict
from xdepthrecon.stats.geometry import unit_vectors

#: Default cells each tile reaches into the next: 3 cells on 8-cell tiles cost about twice unblended tiles.
OVERLAP = 3


class DepartureAnalysis(nn.Module):
    """Per-level covariances of the departures from the background, and their optimal interpolation.

    Build with :meth:`fit` (or :meth:`from_covariances`); :func:`~xdepthrecon.fit_analysis` does so.

    Parameters
    ----------
    levels
        Depth levels.
    kernel
        Correlation function: ``"matern32"``, ``"exponential"`` or ``"gaussian"``.
    neighbours
        Observed columns each tile's analysis uses.
    tile
        Side (cells) of the square tiles that share their neighbours.
    overlap
        Cells each tile reaches into the next, over which their results are blended
        (:func:`~xdepthrecon.stats.covariance.blended_tiles`), at most ``tile // 2``; None: :data:`OVERLAP` or
        ``tile // 2`` if less. The mean and the stated variance then have no steps at the tiles' edges.
    """

    def __init__(self, levels: int, kernel: str = "matern32", neighbours: int = 32, tile: int = 8,
                 overlap: int | None = None) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r} is not one of {tuple(KERNELS)}.")
        if levels < 1 or neighbours < 1 or tile < 1:
            raise ValueError(f"levels, neighbours and tile must be >= 1, got {levels}, {neighbours}, {tile}")
        self.kernel, self.neighbours, self.tile = kernel, int(neighbours), int(tile)
        self.overlap = min(OVERLAP, self.tile // 2) if overlap is None else int(overlap)
        if not 0 <= self.overlap <= self.tile // 2:
            raise ValueError(f"overlap must be between 0 and tile // 2 = {self.tile // 2}, got {overlap}")
        for name in ("length_scale", "signal_variance", "noise_variance"):
            self.register_buffer(name, torch.ones(levels))

    @property
    def config(self) -> dict[str, str | int]:
        """Constructor arguments, JSON-serialisable."""
        return {"levels": len(self.length_scale), "kernel": self.kernel, "neighbours": self.neighbours,
                "tile": self.tile, "overlap": self.overlap}

    @property
    def covariances(self) -> list[Covariance]:
        """The fitted covariance of each level."""
        columns = zip(*(getattr(self, name).tolist() for name in ("length_scale", "signal_variance",
                                                                   "noise_variance")))
        return [Covariance(self.kernel, *values) for values in columns]

    @classmethod
    def fit(cls, positions: Sequence[np.ndarray], departures: Sequence[np.ndarray], *, kernel: str = "matern32",
            neighbours: int = 32, tile: int = 8, overlap: int | None = None, max_blocks: int = 64,
            seed: int = 0) -> DepartureAnalysis:
        """Fit each level's covariance to departures observed in independent fields (patches, time steps).

        Parameters
        ----------
        positions
            Per field, unit vectors ``(n, 3)`` of its observed columns.
        departures
            Per field, the departures ``(levels, n)`` in degC, NaN where a column is not observed at a level.
        kernel, neighbours, tile, overlap
            See the class.
        max_blocks
            Fields (or blocks of them) in each level's composite likelihood.
        seed
            Seed of the choice of blocks.
        """
        if not len(departures):
            raise ValueError("no observed departures to fit the analysis to; sample more profiles.")
        fits = fit_levels(positions, departures, kernel, max_blocks=max_blocks, rng=np.random.default_rng(seed))
        return cls.from_covariances(fits, neighbours=neighbours, tile=tile, overlap=overlap)

    @classmethod
    def from_covariances(cls, covariances: Sequence[Covariance], *, neighbours: int = 32,
                         tile: int = 8, overlap: int | None = None) -> DepartureAnalysis:
        """An analysis with the given covariance per level (all of one kernel)."""
        kernels = {c.kernel for c in covariances}
        if len(kernels) != 1:
            raise ValueError(f"the levels' covariances must share one kernel, got {sorted(kernels)}")
        analysis = cls(len(covariances), kernels.pop(), neighbours, tile, overlap)
        for name in ("length_scale", "signal_variance", "noise_variance"):
            getattr(analysis, name).copy_(torch.tensor([getattr(c, name) for c in covariances]))
        return analysis

    def forward(self, departure: torch.Tensor, observed: torch.Tensor, latitude: torch.Tensor,
                longitude: torch.Tensor, *, with_variance: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Analysed departures and their error variance on the whole grid.

        Parameters
        ----------
        departure
            Departures of the observations (batch, levels, H, W) in degC; ignored where not observed.
        observed
            Where they are observed (batch, levels, H, W).
        latitude, longitude
            Cell coordinates (degrees) of each item: (batch, H) and (batch, W).
        with_variance
            False skips the variance (returned as None), most of the work.

        Returns
        -------
        tuple of torch.Tensor
            Mean and variance (batch, levels, H, W), float32 on ``departure``'s device: 0 and the prior
            variance far from observations.
        """
        if departure.shape[1] != len(self.length_scale):
            raise ValueError(f"the analysis has {len(self.length_scale)} levels; the departures have "
                             f"{departure.shape[1]}")
        values = torch.where(observed.bool(), departure.detach(), torch.nan).double().cpu().numpy()
        latitude, longitude = latitude.double().cpu().numpy(), longitude.double().cpu().numpy()
        batch, levels, height, width = values.shape
        (tiles, weights), covariances = blended_tiles(height, width, self.tile, self.overlap), self.covariances
        mean, variance = np.empty(values.shape), np.empty(values.shape) if with_variance else None
        for item in range(batch):
            lat, lon = np.meshgrid(latitude[item], longitude[item], indexing="ij")
            cells = unit_vectors(lat.ravel(), lon.ravel())
            field = values[item].reshape(levels, -1)
            columns = np.flatnonzero(np.isfinite(field).any(axis=0))
            m, v = predict(cells[columns], field[:, columns], cells, tiles, cov=covariances,
                           neighbours=self.neighbours, with_variance=with_variance, weights=weights)
            mean[item] = m.reshape(levels, height, width)
            if variance is not None:
                variance[item] = v.reshape(levels, height, width)
        as_tensor = lambda a: torch.from_numpy(a).float().to(departure.device)  # noqa: E731
        return as_tensor(mean), None if variance is None else as_tensor(variance)
