"""Fitting the classical analysis to a training cube (:func:`fit_analysis`).

1. The seasonal background with its SST regression is fitted to the whole training cube.
2. Backgrounds fitted without each block of the map, and without each fold of time steps, stand in for a
   new region and a new season (:func:`~xdepthrecon.training.calibration.calibration_backgrounds`).
3. On validation patches (:data:`COVARIANCE_PATCH_SIZE` cells at most), observations (real, or simulated from
   the truth) give departures from the new-region backgrounds; each level's covariance is fitted to them by
   maximum likelihood, each patch an independent field; and again to the departures from the new-region
   backgrounds without their SST term (the climate), which the analysis spreads where clouds hide the SST.
4. The analysis's error is measured against the truth on the same patches, with each kind of background and
   the SST under simulated clouds as :attr:`~xdepthrecon.ObservationConfig.cloud_cover` says
   (:func:`~xdepthrecon.training.observations.simulate_clouds`), and stored as two error models.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import xarray as xr

from xdepthrecon.analysis.background import SeasonalBackground
from xdepthrecon.analysis.classical import Analysis, AnalysisConfig, anchor
from xdepthrecon.analysis.departures import DepartureAnalysis, density_classes, observed_fractions
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.io.cube import as_cube
from xdepthrecon.io.sst import align_sst
from xdepthrecon.stats.covariance import MIN_FIT_OBSERVATIONS, Covariance
from xdepthrecon.stats.geometry import unit_vectors
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader
from xdepthrecon.training.calibration import (HELD_OUT, calibrate, calibration_backgrounds, counted,
                                              progress_bar)
from xdepthrecon.training.config import DIFFUSION_TRAINING, ObservationConfig, TrainingConfig
from xdepthrecon.training.loop import patches, pick_device, split_for
from xdepthrecon.training.observations import batch_inputs

#: Length scale (km) of the departures' covariance when too few columns are observed to fit one.
PRIOR_LENGTH_KM = 300.0
#: The covariance fit's patches, whatever the diffusion recipe's: at most this many cells a side (with the recipe's
#: halo around them), at least this many to a batch. More, smaller patches of the same windows, each with profiles
#: of its own: fitted on 4 patches of 64 cells a batch, the demo's guess lost 3 % RMSE at 300-1000 m.
COVARIANCE_PATCH_SIZE, COVARIANCE_BATCH_SIZE = 32, 16


@dataclass
class TrainingData:
    """A training cube's fields on one grid, and what the calibration needs of them."""

    fields: dict[str, xr.DataArray]
    field: xr.DataArray
    sst: xr.DataArray
    observations: ObservationConfig
    depth_max_index: int | None
    split: tuple[list, list]

    @property
    def windows(self) -> list:
        """The windows the models are calibrated on: the validation windows, else the training windows."""
        return self.split[1] or self.split[0]


def training_data(cube: xr.Dataset | xr.DataArray, sst: xr.Dataset | xr.DataArray, profiles: xr.Dataset | None, *,
                  observations: ObservationConfig, training: TrainingConfig) -> TrainingData:
    """The truth, the aligned SST and (with real profiles) the gridded observations of a training cube."""
    truth = as_cube(cube)
    surface = align_sst(sst, truth).sst.transpose("time", "latitude", "longitude")
    fields = {"y": truth.thetao, "sst": surface}
    if profiles is not None:
        gridded = grid_profiles(profiles, like=truth, window=observations.window)
        fields.update(x=gridded.x, x_mask=gridded.x_mask.astype("float32"))
    depth = truth.depth.values
    depth_max_index = None if observations.depth_max is None else int(
        np.searchsorted(depth, observations.depth_max, "right"))
    field = truth.thetao.rename(depth="channel").transpose("time", "channel", "latitude", "longitude").load()
    return TrainingData(fields, field, surface.load(), observations, depth_max_index, split_for(fields, training))


def fit_analysis(
    cube: xr.Dataset | xr.DataArray,
    sst: xr.Dataset | xr.DataArray,
    *,
    config: AnalysisConfig | None = None,
    profiles: xr.Dataset | None = None,
    observations: ObservationConfig | None = None,
    training: TrainingConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Analysis:
    """Fit the classical analysis (:class:`~xdepthrecon.analysis.classical.Analysis`) to a training cube.

    Parameters
    ----------
    cube
        The truth (reanalysis) cube, in any layout :func:`xdepthrecon.standardize` reads; its values are
        held in memory.
    sst
        Surface temperature on any grid (Kelvin or degC), aligned with :func:`xdepthrecon.align_sst`.
    config
        Settings of the analysis (default :class:`~xdepthrecon.AnalysisConfig`).
    profiles
        Real profiles to fit the departures to; None simulates them from the cube (``observations``).
    observations
        Density, depth and noise of simulated profiles, and the gridding window of real ones.
    training
        Patch size, validation fraction and seed of the validation patches (default: the diffusion
        model's, so both are calibrated on the same windows).
    device
        Where the batches are prepared.
    progress
        Show progress.
    """
    training = training or DIFFUSION_TRAINING
    data = training_data(cube, sst, profiles, observations=observations or ObservationConfig(), training=training)
    analysis, _ = fit_with_backgrounds(data, config or AnalysisConfig(), training, device=pick_device(device),
                                       progress=progress)
    return analysis


def fit_with_backgrounds(data: TrainingData, config: AnalysisConfig, training: TrainingConfig, *,
                         device: torch.device, progress: bool) -> tuple[Analysis, dict[str, xr.DataArray]]:
    """The fitted analysis and the cross-validated backgrounds it was calibrated with; ``progress`` shows one
    bar over the phases (the background fit, ``2 * config.folds`` cross-validated fits, the covariance fit
    and the two calibrations), each named as it runs."""
    with progress_bar(2 * config.folds + 5, progress, "background fit") as bar:
        background = SeasonalBackground.fit(data.field, data.sst, harmonics=config.harmonics, band=config.band,
                                            largest_scale_km=config.sst_largest_scale_km,
                                            slope_harmonics=config.slope_harmonics)
        bar.update()
        backgrounds = calibration_backgrounds(data.field, data.sst, config, seed=training.seed,
                                              choice=background.choice, bar=bar)
        bar.set_description("covariance fit")
        fitting = replace(training, patch_size=min(training.patch_size, COVARIANCE_PATCH_SIZE),
                          batch_size=max(training.batch_size, COVARIANCE_BATCH_SIZE))
        space = calibration_patches(data, backgrounds["space"], fitting)
        departures = _fit_departures(space, data, config, fitting, device, bar)
        bar.update()
        bar.set_description("covariance fit (no SST)")
        gap_departures = _fit_departures(space, data, config, fitting, device, bar, without_sst=True)
        bar.update()
        analysis = Analysis(background, departures, config, gap_departures=gap_departures)
        analysis.depth.copy_(torch.tensor(data.field.channel.values, dtype=torch.float64))

        def estimate(batch: dict[str, torch.Tensor], random: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            guess = analysis(batch_inputs(batch, data.observations, random, data.depth_max_index, clouds=True),
                             interior=batch["interior"])
            return guess.mean, guess.predicted_variance

        errors = {}
        for over in HELD_OUT:
            bar.set_description(f"calibration ({over})")
            errors[over] = calibrate(estimate, calibration_patches(data, backgrounds[over], training),
                                     training.batch_size, device=device, seed=training.seed, batches=config.batches,
                                     bar=bar)
            bar.update()
    analysis.error_model, analysis.covered_error_model = errors["space"], errors["time"]
    return analysis, backgrounds


def calibration_patches(data: TrainingData, held_out: xr.Dataset, training: TrainingConfig) -> PatchDataset:
    """The calibration windows' patches (unsharded, so data-parallel replicas stay identical) with the
    ``background`` and ``climate`` of ``held_out`` (:func:`~xdepthrecon.training.calibration.calibration_backgrounds`)
    as each cell's."""
    fields = {**data.fields, "background": held_out.background, "climate": held_out.climate}
    return patches(fields, training, data.windows, seed=training.seed + 2)


@torch.no_grad()
def _fit_departures(dataset: PatchDataset, data: TrainingData, config: AnalysisConfig, training: TrainingConfig,
                    device: torch.device, bar: Any, *, without_sst: bool = False) -> DepartureAnalysis:
    """Covariances of the observations' departures from the anchored background (``without_sst``: from the
    climate, as where the SST is missing) on ``dataset``'s patches, each patch an independent field, per class of
    density (``config.density_classes``, simulated profiles only); a prior one, with a warning, when too few
    columns are observed."""
    random = torch.Generator().manual_seed(training.seed + 555)
    low, high = data.observations.density
    classes = config.density_classes if "x" not in data.fields and low < high else 1
    bounds = np.geomspace(low, high, classes + 1)
    positions, departures, fractions = [], [], []
    loader = PrefetchLoader(dataset, training.batch_size, device=device)
    for density in zip(bounds[:-1], bounds[1:]) if classes > 1 else [data.observations.density]:
        observations = replace(data.observations, density=tuple(density))
        for batch in counted(loader, min(config.batches, len(loader)), bar):
            inputs = batch_inputs(batch, observations, random, data.depth_max_index)
            if without_sst:
                inputs = inputs._replace(sst=torch.full_like(inputs.sst, torch.nan), background=inputs.climate)
            _, departure, observed = anchor(inputs, config.slope_scale_km)
            values = torch.where(observed, departure, torch.nan).cpu().numpy()
            fractions.extend(observed_fractions(observed, inputs.ocean))
            latitude, longitude = batch["cell_latitude"].cpu().numpy(), batch["cell_longitude"].cpu().numpy()
            for item, field in enumerate(values):
                rows, columns = np.nonzero(np.isfinite(field).any(axis=0))
                positions.append(unit_vectors(latitude[item, rows], longitude[item, columns]))
                departures.append(field[:, rows, columns])
    per_level = sum((np.isfinite(d).sum(axis=1) for d in departures), np.zeros(1, dtype=int))
    if per_level.max() >= MIN_FIT_OBSERVATIONS:
        edges = bounds[1:-1]
        return DepartureAnalysis.fit(positions, departures, kernel=config.kernel, neighbours=config.neighbours,
                                     tile=config.tile, seed=training.seed,
                                     classes=density_classes(fractions, edges), density_edges=edges)
    warnings.warn(f"too few observed columns ({int(per_level.max())}) to fit the departures' covariances; the "
                  f"analysis uses a prior one ({PRIOR_LENGTH_KM:g} km, the departures' variance). Train on more data "
                  "or a higher observation density.", stacklevel=5)
    pooled = np.concatenate([d.ravel() for d in departures]) if departures else np.zeros(0)
    variance = float(np.nanvar(pooled)) if np.isfinite(pooled).sum() > 1 else 1.0
    levels = data.field.sizes["channel"]
    prior = [Covariance(config.kernel, PRIOR_LENGTH_KM, max(variance, 1e-6), 0.1 * max(variance, 1e-6))] * levels
    return DepartureAnalysis.from_covariances(prior, neighbours=config.neighbours, tile=config.tile)
