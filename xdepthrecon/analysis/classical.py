"""The classical analysis: background + SST regression + optimal interpolation of the departures, calibrated.

What an oceanographer would build without a network (an ARMOR3D-style analysis), as one saveable object:

1. the seasonal background of the training cube at each cell and level, with a regression on the SST
   anomaly's horizontal scale bands per latitude band
   (:class:`~xdepthrecon.analysis.background.SeasonalBackground`);
2. the SST's departure from the background's surface level, averaged over each cell's neighbours (a Gaussian
   of one cell: the grid-scale noise of the SST is not carried down), carried down by local regression slopes:
   at each level and cell, the least-squares slope of the observed departures on the SST's, the observed
   columns weighted by a Gaussian of their distance (``slope_scale_km``), drawn towards the time step's
   overall slope with the weight of :data:`SLOPE_PRIOR_COLUMNS` columns, with a ridge of
   :data:`SLOPE_RIDGE` per column (no SST term with fewer than :data:`MIN_SLOPE_COLUMNS` observed columns);
3. the observations' remaining departures spread level by level by optimal interpolation with fitted
   covariances (:class:`~xdepthrecon.analysis.departures.DepartureAnalysis`), which also states an error
   variance. Where clouds hide the SST, the background has no SST term and the departures from it are the whole
   mesoscale, several times those the covariances were fitted to: there the analysis is the climate plus the
   optimal interpolation of every profile's departure from the climate, with covariances fitted to those
   (``gap_departures``), and the profiles under clouds take no part in the analysis of the cells with SST;
4. that variance calibrated against the errors the analysis made on validation data it was not fitted
   to (:class:`~xdepthrecon.analysis.errors.ErrorModel`): one error model for regions the training data did
   not cover, one for covered regions at new times, blended by the training data's coverage smoothed over
   :data:`COVERAGE_SCALE_KM` (:meth:`Analysis.coverage`), so the stated error varies smoothly in space.

Fit it with :func:`xdepthrecon.fit_analysis`; run it on files with :func:`xdepthrecon.reconstruct`
(``model=analysis``) or on tensors by calling it with :class:`AnalysisInputs`. The diffusion model
(:class:`~xdepthrecon.diffusion.latent.LatentDiffusion`) composes one and generates the departure from its
guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from xdepthrecon import checkpoint
from xdepthrecon._halo import interior_of
from xdepthrecon.analysis.background import SeasonalBackground
from xdepthrecon.analysis.departures import DepartureAnalysis
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.io.cube import is_global
from xdepthrecon.stats.smoothing import cells_per_scale, gaussian_mean, gaussian_sum_km

#: Fewest observed columns for the SST slopes (else no SST term).
MIN_SLOPE_COLUMNS = 10
#: Weight, in columns, of a time step's overall SST slope in each cell's local slope.
SLOPE_PRIOR_COLUMNS = 3.0
#: Ridge of the SST slopes (degC^2 per column): SST departures much smaller than its root define no slope.
SLOPE_RIDGE = 0.1**2
#: Gaussian (rows, columns, in cells) that averages the SST's departure before the local slopes carry it down.
SST_SMOOTHING_CELLS = (1.0, 1.0)
#: Gaussian length scale (km) over which the error models of covered and uncovered regions blend.
COVERAGE_SCALE_KM = 500.0


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of the classical analysis; the defaults are the recipe the benchmarks use.

    Parameters
    ----------
    harmonics
        Annual harmonics of the seasonal background.
    band
        Latitude band (degrees) that shares one SST slope in the background.
    sst_largest_scale_km
        Largest length scale (km) of the SST anomaly's scale bands, each with its own slopes in the background
        (:class:`~xdepthrecon.analysis.background.SeasonalBackground`); None: one slope for all scales.
    slope_harmonics
        Annual harmonics the background's SST slopes may vary with, level by level where cross-validation over
        time says it predicts better (a surface anomaly reaches as deep as the mixed layer, which follows the
        seasons); 0: constant slopes.
    slope_scale_km
        Gaussian length scale (km) of the local SST regression slopes.
    kernel
        Correlation function of the departures: ``"matern32"``, ``"exponential"`` or ``"gaussian"``.
    neighbours, tile
        Observed columns each square tile of ``tile`` cells uses in the optimal interpolation.
    block, folds
        The cross-validated backgrounds that fit the covariances and calibrate the error hold out
        ``block``-degree squares of the map (and time steps), dealt into ``folds`` folds.
    batches
        Batches of validation patches that fit the covariances and calibrate the error.
    density_classes
        With simulated profiles, the covariances are fitted separately for this many classes of density, log-evenly
        over the simulated densities (``batches`` batches each), and each field is analysed with the class its
        observed fraction falls in (:class:`~xdepthrecon.analysis.departures.DepartureAnalysis`); 1: one for all.
        Real profiles give one class.
    """

    harmonics: int = 1
    band: float = 10.0
    sst_largest_scale_km: float | None = 500.0
    slope_harmonics: int = 1
    slope_scale_km: float = 1500.0
    kernel: str = "matern32"
    neighbours: int = 32
    tile: int = 8
    block: float = 30.0
    folds: int = 4
    batches: int = 16
    density_classes: int = 3

    def __post_init__(self) -> None:
        if not self.slope_scale_km > 0:
            raise ValueError(f"slope_scale_km must be a positive length in km, got {self.slope_scale_km}")
        if (self.folds < 2 or self.batches < 1 or self.harmonics < 0 or self.slope_harmonics < 0
                or self.density_classes < 1):
            raise ValueError(f"folds must be >= 2, batches and density_classes >= 1 and harmonics and slope_harmonics "
                             f">= 0, got {self.folds}, {self.batches}, {self.density_classes}, {self.harmonics}, "
                             f"{self.slope_harmonics}")


class AnalysisInputs(NamedTuple):
    """A batch of observations on a grid, as the analysis and the diffusion model take them.

    ``x`` (batch, levels, H, W) observed temperature in degC, NaN where unobserved; ``mask`` where it is
    observed; ``sst`` (batch, 1, H, W) in degC, NaN where missing; ``background`` (batch, levels, H, W)
    the seasonal background at these times and cells (:meth:`Analysis.background_at`, or a
    cross-validated one in training); ``latitude`` (batch, H) and ``longitude`` (batch, W) in degrees;
    ``ocean`` (batch, H, W) where the grid is ocean, which the observed fraction that picks the departures'
    density class counts over (None: every cell); ``climate`` (batch, levels, H, W) the background without its
    SST term (:meth:`Analysis.climate_at`), which the analysis needs where the SST of an ocean cell is missing.
    """

    x: torch.Tensor
    mask: torch.Tensor
    sst: torch.Tensor
    background: torch.Tensor
    latitude: torch.Tensor
    longitude: torch.Tensor
    ocean: torch.Tensor | None = None
    climate: torch.Tensor | None = None


class Guess(NamedTuple):
    """The analysis's estimate (batch, levels, H, W) in degC and the optimal interpolation's error variance
    (degC^2; None when not asked for), which the error models calibrate."""

    mean: torch.Tensor
    predicted_variance: torch.Tensor | None


class Analysis(nn.Module):
    """The classical analysis (see the module docstring); build it with :func:`xdepthrecon.fit_analysis`.

    Parameters
    ----------
    background
        The seasonal background of the training cube.
    departures
        Covariances of the departures from the anchored background, per level.
    config
        The settings it was fitted with.
    error_model, covered_error_model
        Calibration of the analysis's error against backgrounds fitted without each region, and without
        each time step (used where the training data covered the cell); None: the OI variance as is.
    gap_departures
        Covariances of the departures from the climate, which the analysis spreads where the SST is missing;
        None (analyses saved before them): the cells without SST are analysed as the others.
    """

    def __init__(self, background: SeasonalBackground, departures: DepartureAnalysis,
                 config: AnalysisConfig | None = None, error_model: ErrorModel | None = None,
                 covered_error_model: ErrorModel | None = None,
                 gap_departures: DepartureAnalysis | None = None) -> None:
        super().__init__()
        levels = background.field.shape[1]
        for analysis in (departures, gap_departures):
            if analysis is not None and analysis.length_scale.shape[1] != levels:
                raise ValueError(f"the background has {levels} levels; the departure analysis has "
                                 f"{analysis.length_scale.shape[1]}")
        self.background = background
        self.departures = departures
        self.gap_departures = gap_departures
        self.settings = config or AnalysisConfig()
        self.error_model = error_model
        self.covered_error_model = covered_error_model
        self.register_buffer("depth", torch.zeros(levels, dtype=torch.float64))

    @property
    def levels(self) -> int:
        """Number of depth levels."""
        return self.background.field.shape[1]

    def check_levels(self, depth: Any) -> None:
        """Raise a ValueError unless ``depth`` (m) are the levels the analysis was fitted on."""
        given, fitted = np.asarray(depth, dtype=np.float64), self.depth.cpu().numpy()
        if given.shape != fitted.shape or not np.allclose(given, fitted, rtol=1e-4, atol=1e-3):
            raise ValueError(f"the data's {given.size} depth levels ({given.min():g} ... {given.max():g} m) are not "
                             f"the {fitted.size} the analysis was fitted on ({fitted[0]:g} ... {fitted[-1]:g} m); "
                             "interpolate the data to them (cube.interp(depth=analysis.depth.numpy())) or fit an "
                             "analysis on the data's levels")

    # --- saving ---------------------------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """Everything but arrays and weights, as a JSON-serialisable dict."""
        optional = lambda model: None if model is None else model.config  # noqa: E731
        return {"settings": asdict(self.settings), "background": self.background.config,
                "departures": self.departures.config, "error_model": optional(self.error_model),
                "covered_error_model": optional(self.covered_error_model),
                "gap_departures": optional(self.gap_departures)}

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """No arrays beyond the buffers."""
        return {}

    @classmethod
    def from_saved(cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Analysis:
        """Rebuild an empty analysis from :attr:`config`; the buffers are loaded after."""
        settings = {"slope_harmonics": 0, **config["settings"]}  # saved before the seasonal slopes: constant ones
        settings = AnalysisConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        errors, covered = (None if config[k] is None else ErrorModel(**config[k])
                           for k in ("error_model", "covered_error_model"))
        gaps = config.get("gap_departures")  # absent: saved before the analysis of SST gaps
        return cls(SeasonalBackground(**config["background"]), DepartureAnalysis(**config["departures"]),
                   settings, errors, covered, None if gaps is None else DepartureAnalysis(**gaps))

    def save(self, path: str | PathLike[str]) -> Path:
        """Save to one file (read back with :func:`xdepthrecon.load`)."""
        return checkpoint.save(self, path)

    # --- the maths ------------------------------------------------------------------------------------------

    def background_at(self, times: Any, latitude: np.ndarray, longitude: np.ndarray,
                      sst: np.ndarray) -> torch.Tensor:
        """The seasonal background ``(time, levels, latitude, longitude)`` in degC on a grid (see
        :meth:`SeasonalBackground.at <xdepthrecon.analysis.background.SeasonalBackground.at>`)."""
        return self.background.at(times, latitude, longitude, sst)

    def climate_at(self, times: Any, latitude: np.ndarray, longitude: np.ndarray) -> torch.Tensor:
        """The background without its SST term ``(time, levels, latitude, longitude)`` in degC on a grid (see
        :meth:`SeasonalBackground.climate_at <xdepthrecon.analysis.background.SeasonalBackground.climate_at>`)."""
        return self.background.climate_at(times, latitude, longitude)

    @torch.no_grad()
    def forward(self, inputs: AnalysisInputs, *, with_variance: bool = True,
                interior: torch.Tensor | None = None) -> Guess:
        """The analysis of a batch: the anchored background plus the analysed departures, and (with
        ``with_variance``) the optimal interpolation's error variance; where the SST of an ocean cell is missing,
        the climate plus the analysed departures from it (see the module docstring). With ``interior`` ((batch,
        4): first row, first column, rows and columns of each field's part, the same size in every field), the
        analysis of that part from the observations of the whole field (a training patch within its halo)."""
        if inputs.x.shape[1] != self.levels:
            raise ValueError(f"the analysis has {self.levels} levels; the observations have {inputs.x.shape[1]}")
        gaps = self.sst_gaps(inputs)
        clear = inputs if gaps is None else inputs._replace(
            mask=inputs.mask.bool() & ~gaps[:, None], ocean=~gaps if inputs.ocean is None else inputs.ocean & ~gaps)
        anchored, departure, observed = anchor(clear, self.settings.slope_scale_km)
        analysed, variance = self.departures(departure, observed, inputs.latitude, inputs.longitude,
                                             ocean=clear.ocean, with_variance=with_variance, interior=interior)
        guess = Guess(interior_of(anchored, interior) + analysed, variance)
        return guess if gaps is None else self._fill_gaps(guess, inputs, gaps, interior)

    def sst_gaps(self, inputs: AnalysisInputs) -> torch.Tensor | None:
        """The ocean cells (batch, H, W) whose SST is missing, which the analysis of departures from the climate
        fills; None where there are none or the analysis has no ``gap_departures``."""
        if self.gap_departures is None:
            return None
        gaps = missing_sst(inputs)
        if not gaps.any():
            return None
        if inputs.climate is None:
            raise ValueError(f"the SST is missing in {int(gaps.sum())} ocean cells and the inputs carry no climate to "
                             "analyse them from: pass AnalysisInputs(climate=analysis.climate_at(times, latitude, "
                             "longitude)), or fill the SST")
        return gaps

    def _fill_gaps(self, guess: Guess, inputs: AnalysisInputs, gaps: torch.Tensor,
                   interior: torch.Tensor | None) -> Guess:
        """``guess`` (of each field's ``interior``) with the cells of ``gaps`` (batch, H, W) taken from the optimal
        interpolation of every observation's departure from the climate, in the fields whose part has gaps."""
        gaps = interior_of(gaps, interior)
        items = torch.nonzero(gaps.flatten(1).any(dim=1))[:, 0]
        if items.numel() == 0:  # the gaps lie outside every field's part
            return guess
        pick = lambda t: None if t is None else t.index_select(0, items.to(t.device))  # noqa: E731
        x, mask, climate = pick(inputs.x), pick(inputs.mask).bool(), pick(inputs.climate)
        observed = mask & ~torch.isnan(x)
        with_variance = guess.predicted_variance is not None
        analysed, variance = self.gap_departures(torch.where(observed, x - climate, 0.0), observed,
                                                 pick(inputs.latitude), pick(inputs.longitude),
                                                 ocean=pick(inputs.ocean), with_variance=with_variance,
                                                 interior=pick(interior))
        where = gaps[items][:, None]
        mean = guess.mean.clone()
        mean[items] = torch.where(where, interior_of(climate, pick(interior)) + analysed, mean[items])
        if variance is None:
            return Guess(mean, None)
        stated = guess.predicted_variance.clone()
        stated[items] = torch.where(where, variance, stated[items])
        return Guess(mean, stated)

    def coverage(self, latitude: np.ndarray, longitude: np.ndarray) -> torch.Tensor:
        """How much the training data covered the neighbourhood of each cell of a grid, (latitude, longitude)
        in [0, 1]: the covered mask (:meth:`SeasonalBackground.covered_at
        <xdepthrecon.analysis.background.SeasonalBackground.covered_at>`) averaged with Gaussian weights of
        :data:`COVERAGE_SCALE_KM` (wrapping in longitude on a global grid)."""
        covered = self.background.covered_at(latitude, longitude).float()[None, None]
        lat, lon = torch.tensor(np.asarray(latitude, np.float64)), torch.tensor(np.asarray(longitude, np.float64))
        sigma = cells_per_scale(COVERAGE_SCALE_KM, lat, lon)
        weight = gaussian_mean(covered, torch.ones_like(covered), sigma, periodic=is_global(np.asarray(longitude)))
        return weight[0, 0].clamp(0.0, 1.0)

    def error_variance(self, guess: Guess, coverage: torch.Tensor | None = None) -> torch.Tensor:
        """The calibrated error variance of ``guess`` (batch, levels, H, W): the OI variance scaled by the
        error models, blended by ``coverage`` (H, W; :meth:`coverage`); by the uncovered-region model alone
        without it."""
        if guess.predicted_variance is None:
            raise ValueError("the guess carries no variance: call the analysis with with_variance=True")
        return calibrated_variance(guess.predicted_variance, self.error_model, self.covered_error_model, coverage)


def missing_sst(inputs: AnalysisInputs) -> torch.Tensor:
    """The ocean cells (batch, H, W) of ``inputs`` whose SST is missing (every cell is ocean without ``ocean``)."""
    missing = torch.isnan(inputs.sst[:, 0])
    return missing if inputs.ocean is None else missing & inputs.ocean.to(missing.device).bool()


def calibrated_variance(predicted: torch.Tensor, error_model: ErrorModel | None,
                        covered_error_model: ErrorModel | None = None,
                        coverage: torch.Tensor | None = None, *, gaps: torch.Tensor | None = None) -> torch.Tensor:
    """``predicted`` scaled by ``error_model`` and ``covered_error_model``, weighted ``1 - coverage`` and
    ``coverage`` (H, W, in [0, 1]); by ``error_model`` alone without the others; ``predicted`` itself without
    an error model. ``gaps`` (batch, H, W; True where the SST is missing) picks the error models' ratios
    under gaps where they have them (:meth:`~xdepthrecon.analysis.errors.ErrorModel.expected_variance`)."""
    if error_model is None:
        return predicted
    variance = error_model.expected_variance(predicted, gaps)
    if covered_error_model is not None and coverage is not None:
        weight = coverage.to(variance)
        variance = weight * covered_error_model.expected_variance(predicted, gaps) + (1.0 - weight) * variance
    return variance


def anchor(inputs: AnalysisInputs, slope_scale_km: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The background with the SST term (step 2 of the module docstring), the observations' departures from
    it (0 where not observed) and where they are observed, each (batch, levels, H, W)."""
    observed = inputs.mask.bool() & ~torch.isnan(inputs.x)
    departure = torch.where(observed, inputs.x - inputs.background, 0.0)
    surface = inputs.sst[:, :1] - inputs.background[:, :1]
    sst_departure = gaussian_mean(torch.nan_to_num(surface), torch.isfinite(surface).float(), SST_SMOOTHING_CELLS)
    pairs = observed.float()
    products, squares = departure * sst_departure * pairs, (sst_departure**2 + SLOPE_RIDGE) * pairs
    columns = pairs.sum(dim=(-2, -1), keepdim=True)
    prior = SLOPE_PRIOR_COLUMNS / columns.clamp(min=1.0)  # the overall sums, scaled to that weight
    local = lambda field: gaussian_sum_km(field, slope_scale_km, inputs.latitude, inputs.longitude)  # noqa: E731
    slope = (local(products) + prior * products.sum(dim=(-2, -1), keepdim=True)) / (
        local(squares) + prior * squares.sum(dim=(-2, -1), keepdim=True)).clamp(min=1e-6)
    trend = torch.where(columns >= MIN_SLOPE_COLUMNS, slope, 0.0) * sst_departure
    return inputs.background + trend, torch.where(observed, departure - trend, 0.0), observed
