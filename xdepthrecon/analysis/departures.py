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

**Density classes.** The departures left after anchoring depend on how densely the field is observed (the local
SST slopes are fitted from the observations themselves), and so does the covariance that best spreads them: fitted
where profiles are dense it trusts distant profiles too much where they are sparse. Measured on the eddying
nature run, one covariance fitted over densities of 0.08-12 % of the columns was 6 % (100-300 m) and 8 %
(300-1000 m) worse in RMSE at 0.25 % than one fitted for 0.08-0.75 %. So the covariances may be fitted per
class of density (:attr:`density_edges`, the fractions of a field's ocean columns observed that separate the
classes), and each field is analysed with the class its own observed fraction falls in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from xdepthrecon.stats.covariance import KERNELS, MIN_FIT_OBSERVATIONS, Covariance, blended_tiles, fit_levels, predict
from xdepthrecon.stats.geometry import unit_vectors

#: Default cells each tile reaches into the next: 3 cells on 8-cell tiles cost about twice unblended tiles.
OVERLAP = 3
#: The covariance parameters held per density class and level.
_PARAMETERS = ("length_scale", "signal_variance", "noise_variance")


def observed_fractions(observed: torch.Tensor, ocean: torch.Tensor | None = None) -> np.ndarray:
    """Per field of a batch, the fraction of its ocean columns with an observation: ``observed`` (batch, levels, H,
    W) where a value is observed, ``ocean`` (batch, H, W) the cells the fraction counts over (None: all)."""
    batch = observed.shape[0]
    columns = observed.bool().any(dim=1).reshape(batch, -1).sum(dim=1).cpu().numpy()
    cells = (np.full(batch, observed.shape[-2] * observed.shape[-1]) if ocean is None
             else ocean.reshape(batch, -1).sum(dim=1).cpu().numpy())
    return columns / np.maximum(cells, 1)


def density_classes(fractions: Any, density_edges: np.ndarray) -> np.ndarray:
    """The density class of fields observed at ``fractions``: the number of ``density_edges`` at or below each."""
    return np.searchsorted(density_edges, fractions, side="right")


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
                 overlap: int | None = None, classes: int = 1) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r} is not one of {tuple(KERNELS)}.")
        if levels < 1 or neighbours < 1 or tile < 1 or classes < 1:
            raise ValueError(f"levels, neighbours, tile and classes must be >= 1, got {levels}, {neighbours}, {tile}, "
                             f"{classes}")
        self.kernel, self.neighbours, self.tile = kernel, int(neighbours), int(tile)
        self.overlap = min(OVERLAP, self.tile // 2) if overlap is None else int(overlap)
        if not 0 <= self.overlap <= self.tile // 2:
            raise ValueError(f"overlap must be between 0 and tile // 2 = {self.tile // 2}, got {overlap}")
        for name in _PARAMETERS:
            self.register_buffer(name, torch.ones(classes, levels))
        self.register_buffer("density_edges", torch.zeros(classes - 1, dtype=torch.float64))

    @property
    def classes(self) -> int:
        """Number of density classes (each with its own covariances)."""
        return self.length_scale.shape[0]

    @property
    def config(self) -> dict[str, str | int]:
        """Constructor arguments, JSON-serialisable."""
        return {"levels": self.length_scale.shape[1], "kernel": self.kernel, "neighbours": self.neighbours,
                "tile": self.tile, "overlap": self.overlap, "classes": self.classes}

    @property
    def covariances(self) -> list[list[Covariance]]:
        """The fitted covariance of each level, per density class (from the sparsest)."""
        return [[Covariance(self.kernel, *values) for values in zip(*(getattr(self, name)[index].tolist()
                                                                      for name in _PARAMETERS))]
                for index in range(self.classes)]

    def density_class(self, fraction: float) -> int:
        """The class of a field whose observed columns are ``fraction`` of its ocean columns."""
        return int(density_classes(fraction, self.density_edges.cpu().numpy()))

    def classes_of(self, observed: torch.Tensor, ocean: torch.Tensor | None = None) -> torch.Tensor:
        """The density class (:meth:`density_class`) of each field of a batch (:func:`observed_fractions`)."""
        edges = self.density_edges.cpu().numpy()
        return torch.from_numpy(density_classes(observed_fractions(observed, ocean), edges)).long()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Read states saved before density classes: one class, parameters per level only."""
        for name in _PARAMETERS:
            if state_dict.get(prefix + name) is not None and state_dict[prefix + name].ndim == 1:
                state_dict[prefix + name] = state_dict[prefix + name][None]
        state_dict.setdefault(prefix + "density_edges", torch.zeros(0, dtype=torch.float64))
        super()._load_from_state_dict(state_dict, prefix, *args)

    @classmethod
    def fit(cls, positions: Sequence[np.ndarray], departures: Sequence[np.ndarray], *, kernel: str = "matern32",
            neighbours: int = 32, tile: int = 8, overlap: int | None = None, max_blocks: int = 64,
            seed: int = 0, classes: Sequence[int] | None = None,
            density_edges: Sequence[float] = ()) -> DepartureAnalysis:
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
        classes
            Per field, its density class (:meth:`density_class`); None: all in one class.
        density_edges
            Observed fractions that separate the classes (increasing, one fewer than the classes). A class with
            too few observations to fit takes the nearest fitted class's covariances.
        """
        if not len(departures):
            raise ValueError("no observed departures to fit the analysis to; sample more profiles.")
        edges = np.asarray(density_edges, dtype=np.float64)
        if edges.ndim != 1 or np.any(np.diff(edges) <= 0) or np.any((edges <= 0) | (edges >= 1)):
            raise ValueError(f"density_edges must increase within (0, 1), got {edges.tolist()}")
        members = np.zeros(len(departures), dtype=int) if classes is None else np.asarray(classes)
        rng = np.random.default_rng(seed)
        fits: list[list[Covariance] | None] = []
        for index in range(edges.size + 1):
            chosen = np.flatnonzero(members == index)
            try:
                fits.append(fit_levels([positions[i] for i in chosen], [departures[i] for i in chosen], kernel,
                                       max_blocks=max_blocks, rng=rng))
            except ValueError:
                fits.append(None)
        fitted = [i for i, f in enumerate(fits) if f is not None]
        if not fitted:
            raise ValueError(f"no class of density has {MIN_FIT_OBSERVATIONS} observations at any level to fit a "
                             "covariance to; sample more profiles or pass a longer window.")
        per_class = [f if f is not None else fits[min(fitted, key=lambda j: abs(j - i))] for i, f in enumerate(fits)]
        analysis = cls(len(per_class[0]), kernel, neighbours, tile, overlap, len(per_class))
        analysis._set(per_class, edges)
        return analysis

    @classmethod
    def from_covariances(cls, covariances: Sequence[Covariance], *, neighbours: int = 32,
                         tile: int = 8, overlap: int | None = None) -> DepartureAnalysis:
        """An analysis of one density class with the given covariance per level (all of one kernel)."""
        kernels = {c.kernel for c in covariances}
        if len(kernels) != 1:
            raise ValueError(f"the levels' covariances must share one kernel, got {sorted(kernels)}")
        analysis = cls(len(covariances), kernels.pop(), neighbours, tile, overlap)
        analysis._set([covariances], np.zeros(0))
        return analysis

    def _set(self, covariances: Sequence[Sequence[Covariance]], density_edges: np.ndarray) -> None:
        """Hold ``covariances`` (per class, per level) and the classes' ``density_edges``."""
        for name in _PARAMETERS:
            getattr(self, name).copy_(torch.tensor([[getattr(c, name) for c in level] for level in covariances]))
        self.density_edges.copy_(torch.as_tensor(density_edges, dtype=torch.float64))

    def forward(self, departure: torch.Tensor, observed: torch.Tensor, latitude: torch.Tensor,
                longitude: torch.Tensor, *, ocean: torch.Tensor | None = None, with_variance: bool = True,
                interior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Analysed departures and their error variance on the whole grid (or each field's ``interior``).

        Parameters
        ----------
        departure
            Departures of the observations (batch, levels, H, W) in degC; ignored where not observed.
        observed
            Where they are observed (batch, levels, H, W).
        latitude, longitude
            Cell coordinates (degrees) of each item: (batch, H) and (batch, W).
        ocean
            Where each item is ocean (batch, H, W), which the observed fraction that picks its density class is
            counted over; None: every cell.
        with_variance
            False skips the variance (returned as None), most of the work.
        interior
            (batch, 4): first row, first column, rows and columns of the part of each field to analyse, from
            the observations of the whole field (the same size for every field); None: the whole field.

        Returns
        -------
        tuple of torch.Tensor
            Mean and variance (batch, levels, H, W; the interior's rows and columns with ``interior``), float32
            on ``departure``'s device: 0 and the prior variance far from observations.
        """
        if departure.shape[1] != self.length_scale.shape[1]:
            raise ValueError(f"the analysis has {self.length_scale.shape[1]} levels; the departures have "
                             f"{departure.shape[1]}")
        values = torch.where(observed.bool(), departure.detach(), torch.nan).double().cpu().numpy()
        latitude, longitude = latitude.double().cpu().numpy(), longitude.double().cpu().numpy()
        batch, levels = values.shape[:2]
        spans = [[0, 0, *values.shape[2:]]] * batch if interior is None else interior.tolist()
        height, width = spans[0][2:]
        (tiles, weights), covariances = blended_tiles(height, width, self.tile, self.overlap), self.covariances
        shape = (batch, levels, height, width)
        mean, variance = np.empty(shape), np.empty(shape) if with_variance else None
        classes = self.classes_of(torch.from_numpy(np.isfinite(values)), ocean)
        for item, (top, left, _, _) in enumerate(spans):
            lat, lon = np.meshgrid(latitude[item], longitude[item], indexing="ij")
            part = (slice(top, top + height), slice(left, left + width))
            field = values[item].reshape(levels, -1)
            columns = np.flatnonzero(np.isfinite(field).any(axis=0))
            sources = unit_vectors(lat.ravel()[columns], lon.ravel()[columns])
            targets = unit_vectors(lat[part].ravel(), lon[part].ravel())
            m, v = predict(sources, field[:, columns], targets, tiles, cov=covariances[classes[item]],
                           neighbours=self.neighbours, with_variance=with_variance, weights=weights)
            mean[item] = m.reshape(levels, height, width)
            if variance is not None:
                variance[item] = v.reshape(levels, height, width)
        as_tensor = lambda a: torch.from_numpy(a).float().to(departure.device)  # noqa: E731
        return as_tensor(mean), None if variance is None else as_tensor(variance)
