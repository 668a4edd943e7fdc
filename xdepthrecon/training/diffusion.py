"""Training the conditional latent diffusion model as a library function.

The model corrects a classical analysis (:class:`~xdepthrecon.analysis.classical.Analysis`): it is fitted
first (or given), the denoiser then learns the residual of the truth's latent from the analysis's guess, on
patches whose observations are real gridded profiles or simulated from the truth on the fly, and last the
averaged network's one-step error is calibrated on validation patches against backgrounds fitted without
their region (and without their time steps). The autoencoder is frozen (or only its decoder learns).
"""

from __future__ import annotations

import copy
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from xdepthrecon import checkpoint as _checkpoint
from xdepthrecon._halo import interior_of
from xdepthrecon.analysis.classical import Analysis, AnalysisConfig
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.diffusion.guidance import ConditionedDenoiser
from xdepthrecon.diffusion.latent import LatentDiffusion, Prepared
from xdepthrecon.diffusion.samplers import SamplingOptions
from xdepthrecon.diffusion.schedule import NoiseSchedule
from xdepthrecon.encoding import encode
from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.models.losses import reconstruction_loss
from xdepthrecon.models.unet import ConditionalUNet
from xdepthrecon.training import _replicas
from xdepthrecon.training.analysis import TrainingData, calibration_patches, fit_with_backgrounds, training_data
from xdepthrecon.training.batches import PatchDataset
from xdepthrecon.training.calibration import HELD_OUT, calibration_backgrounds, ocean_samples, progress_bar
from xdepthrecon.training.config import (DIFFUSION_TRAINING, DiffusionConfig, ObservationConfig, TrainingConfig,
                                         as_record, resumable_record, with_epochs)
from xdepthrecon.training.loop import datasets_for, fit, pick_device, resume_state
from xdepthrecon.training.observations import batch_inputs

_CONTEXT = ("latitude", "longitude", "day_of_year")
#: Members of the ensemble (:class:`~xdepthrecon.SamplingOptions`' default) whose gated mean the correction
#: gates and the error models are calibrated for: the network's one-step corrections are noisy, and a mean of
#: this many members keeps a part of that noise; one correction alone would take the noise for error.
CALIBRATED_MEMBERS = SamplingOptions().members
#: Smallest ratio of the network's error variance to the analysis's predicted one (a guard: the products the
#: errors are estimated from are not squares).
MIN_ERROR_RATIO = 1e-3
#: Batches of training patches whose departures set a new model's ``residual_std`` and
#: ``surface_departure_std``.
STATISTICS_BATCHES = 32
#: Smallest spread of a departure (normalised latent units, or degC for the SST): a guess that matches the
#: truth exactly somewhere must not make the network's inputs infinite.
MIN_SPREAD = 1e-6


def train_diffusion(
    cube: xr.Dataset | xr.DataArray,
    sst: xr.Dataset | xr.DataArray,
    autoencoder: DepthBandAutoencoder,
    *,
    config: DiffusionConfig | None = None,
    analysis: Analysis | AnalysisConfig | None = None,
    profiles: xr.Dataset | None = None,
    observations: ObservationConfig | None = None,
    training: TrainingConfig | None = None,
    epochs: int | None = None,
    device: str | torch.device | None = None,
    checkpoint: str | PathLike[str] | None = None,
    progress: bool = True,
) -> LatentDiffusion:
    """Train a :class:`~xdepthrecon.LatentDiffusion` to generate the residual of a classical analysis.

    Parameters
    ----------
    cube
        The truth (reanalysis) cube to learn from, in any layout :func:`xdepthrecon.standardize` reads.
    sst
        Surface temperature on any grid (Kelvin or degC); aligned to the cube with :func:`xdepthrecon.align_sst`.
    autoencoder
        A trained :class:`~xdepthrecon.DepthBandAutoencoder` for the cube's levels.
    config
        Denoiser and noise process (default :class:`~xdepthrecon.DiffusionConfig`).
    analysis
        The classical analysis whose guess the network corrects: a fitted
        :class:`~xdepthrecon.Analysis`, or the settings to fit one to ``cube`` with
        (:func:`xdepthrecon.fit_analysis`; default :class:`~xdepthrecon.AnalysisConfig`).
    profiles
        Real profiles (:func:`xdepthrecon.read_profiles` form); None simulates observations from ``cube``.
    observations
        Density, depth and noise of simulated observations, and the gridding window of real profiles
        (default :class:`~xdepthrecon.ObservationConfig`).
    training
        Optimisation (default :data:`~xdepthrecon.training.config.DIFFUSION_TRAINING`).
    epochs
        Shortcut for ``training``'s number of epochs.
    device, checkpoint, progress
        As in :func:`xdepthrecon.train_autoencoder` (resume from ``checkpoint`` when it exists; one trained
        with other settings is refused).

    Returns
    -------
    LatentDiffusion
        In eval mode with the averaged weights, ``history`` (one dict per epoch: loss, val_loss, samples/s,
        seconds), its ``analysis`` and an ``error_model`` and ``covered_error_model``: the network's one-step
        error on the validation patches, against the analysis's predicted variance, with backgrounds fitted
        without each region and without each time step (:class:`~xdepthrecon.analysis.errors.ErrorModel`).
    """
    config = config or DiffusionConfig()
    observations = observations or ObservationConfig()
    training = with_epochs(training or DIFFUSION_TRAINING, epochs)
    given = analysis if isinstance(analysis, Analysis) else None
    settings_of_analysis = given.settings if given is not None else (analysis or AnalysisConfig())
    target = pick_device(device)
    replicas = _replicas.join(target)
    shown = progress and replicas.main  # every replica fits and calibrates alike; the first shows it
    data = training_data(cube, sst, profiles, observations=observations, training=training)
    autoencoder.check_levels(data.field.channel.values)
    path = None if checkpoint is None else Path(checkpoint)
    settings = {"model": as_record(config), "training": resumable_record(training),
                "observations": as_record(observations), "analysis": as_record(settings_of_analysis),
                "autoencoder": autoencoder.config}
    state = resume_state(path, settings)
    backgrounds = None
    torch.manual_seed(training.seed)
    if state is not None:
        model = _checkpoint.load(path, device=target)
    else:
        if given is None:
            fitted, backgrounds = fit_with_backgrounds(data, settings_of_analysis, training, device=target,
                                                       progress=shown)
        else:
            fitted = copy.deepcopy(given).cpu()
        model = _new_model(data, autoencoder, fitted, config, observations.cloud_cover).to(target)
    _set_trainable(model.autoencoder, config.finetune)
    fields = {**data.fields, "background": _background_field(model.analysis, data, data.sst),
              "climate": _background_field(model.analysis, data, None)}
    train_set, val_set, _ = datasets_for(fields, training, (replicas.rank, replicas.world), split=data.split)
    if state is None:
        _set_departure_statistics(model, train_set, data, training, target, replicas)

    def loss(batch: dict[str, torch.Tensor], random: torch.Generator) -> torch.Tensor:
        y = interior_of(batch["y"], batch["interior"])
        prepared = model.prepare(batch_inputs(batch, observations, random, data.depth_max_index, clouds=True),
                                 interior=batch["interior"])
        value = model.loss(y, prepared, {k: batch[k] for k in _CONTEXT}, generator=random, levels=config.noise_levels,
                           mean_weight=config.mean_weight)
        if config.finetune is not None:
            valid = ~torch.isnan(y)
            target_values = torch.where(valid, model.autoencoder.normalize(y), 0.0)
            value = value + reconstruction_loss(model.autoencoder.normalize(model.autoencoder(y)), target_values,
                                                valid)
        return value

    start = 0 if state is None else int(state["epoch"]) + 1
    saved = fit(model, loss, (train_set, val_set), training, device=target, path=path, settings=settings,
                state=state, average="denoiser", progress=progress, name="diffusion")
    if start < training.epochs:  # the averaged network's validation errors set the model's error floor
        _calibrate(model, data, backgrounds, training, target, shown)
        if path is not None and replicas.main:
            _checkpoint.save(model, path, training_state=saved)
        _replicas.barrier(replicas)
    model.requires_grad_(False)
    return model.eval()


def _new_model(data: TrainingData, autoencoder: DepthBandAutoencoder, analysis: Analysis,
               config: DiffusionConfig, cloud_cover: float) -> LatentDiffusion:
    """An untrained model (its denoiser's head at zero: it returns the analysis's guess) that will see up to
    ``cloud_cover`` of a patch's SST hidden; its departures' spreads are set by :func:`_set_departure_statistics`."""
    latent = encode(data.fields["y"].to_dataset(name="thetao"), autoencoder).latent
    dims = ("time", "latitude", "longitude")
    latent_mean, latent_std = (np.asarray(v) for v in xr.concat([latent.mean(dims), latent.std(dims)], "s").values)
    statistics = {"latent_mean": latent_mean, "latent_std": np.maximum(latent_std, 1e-6),
                  "residual_std": np.ones_like(latent_mean), "surface_departure_std": np.ones(1)}
    channels = autoencoder.latent_channels
    denoiser = ConditionalUNet(channels, LatentDiffusion.condition_channels(channels), dim=config.dim,
                               mults=config.mults, attention=config.attention, context=config.context)
    schedule = NoiseSchedule(config.schedule, config.diffusion_steps, config.target)
    return LatentDiffusion(copy.deepcopy(autoencoder).cpu(), denoiser, schedule, analysis, statistics,
                           cloud_cover=cloud_cover)


@torch.no_grad()
def _set_departure_statistics(model: LatentDiffusion, dataset: PatchDataset, data: TrainingData,
                              training: TrainingConfig, device: torch.device, replicas: _replicas.Replicas) -> None:
    """Set the model's ``residual_std`` and ``surface_departure_std`` to the spreads, over the ocean cells of
    :data:`STATISTICS_BATCHES` batches of training patches (pooled over the replicas' shards), of the truth's latent
    about the guess's and of the SST about the guess's surface level where the network sees it (not under the
    simulated clouds, where the guess has no SST term), floored at :data:`MIN_SPREAD`."""
    model.residual_std.fill_(1.0)

    def sample(batch: dict[str, torch.Tensor], random: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = batch_inputs(batch, data.observations, random, data.depth_max_index, clouds=True)
        prepared = model.prepare(inputs, interior=batch["interior"])
        y, sst = (interior_of(values, batch["interior"]) for values in (batch["y"], inputs.sst[:, :1]))
        return model.residual(y, prepared), model.sst_departure(sst, prepared.guess.mean)  # NaN under the clouds

    found = ocean_samples(sample, dataset, training.batch_size, device=device, seed=training.seed,
                          batches=STATISTICS_BATCHES)
    channels = model.residual_std.numel() + 1  # the residual's, then the SST's departure
    moments = [0.0] * 3 * channels if found is None else _moments(np.concatenate(found, axis=1))
    count, total, squares = np.array(_replicas.sums(moments, replicas)).reshape(3, channels)
    if count[0] < 2:
        raise ValueError("the training patches hold too little ocean to measure the departures' spreads")
    mean = total / np.maximum(count, 1.0)
    spread = np.sqrt(np.maximum(squares / np.maximum(count, 1.0) - mean**2, 0.0))
    spread = np.maximum(np.where(count > 1, spread, 1.0), MIN_SPREAD)  # no SST at all: the spread is moot
    model.residual_std.copy_(torch.from_numpy(spread[:-1]))
    model.surface_departure_std.fill_(float(spread[-1]))


def _moments(values: np.ndarray) -> list[float]:
    """Count, sum and sum of squares of the finite ``values (samples, channels)``, channel by channel."""
    valid = np.isfinite(values)
    values = np.where(valid, values, 0.0).astype(np.float64)
    return [*valid.sum(axis=0), *values.sum(axis=0), *np.square(values).sum(axis=0)]


def _background_field(analysis: Analysis, data: TrainingData, sst: xr.DataArray | None) -> xr.DataArray:
    """The analysis's background at every time and cell of the training cube with ``sst`` (time, lat, lon; None:
    the climate, its background without SST), as a field for the patches."""
    field = data.field
    where = (field.time.values, field.latitude.values, field.longitude.values)
    values = analysis.climate_at(*where) if sst is None else analysis.background_at(*where, sst.values)
    return xr.DataArray(values.cpu().numpy(), dims=field.dims, coords=field.coords)


def _calibrate(model: LatentDiffusion, data: TrainingData, backgrounds: dict[str, xr.Dataset] | None,
               training: TrainingConfig, device: torch.device, progress: bool) -> None:
    """Set the model's correction gates and error models on the calibration patches, with the cross-validated
    ``backgrounds`` (fitted anew when None), from one pass of the network's one-step estimates (from two noises)
    over them: the gates per density class from its correction against the truth (:func:`_correction_gate`), one
    from the cells with SST and one from the cells under simulated clouds (the first where there were none), then
    the errors of the gated mean of :data:`CALIBRATED_MEMBERS` members (:func:`_mean_square`), the cells under
    the clouds apart from those with SST where there were enough of them; ``progress`` shows one bar over the
    phases."""
    model.eval()
    settings = model.analysis.settings

    def sample(batch: dict[str, torch.Tensor], random: torch.Generator) -> tuple[torch.Tensor, ...]:
        prepared, residuals = _one_step(model, batch, random, data, device)
        guess, base = prepared.guess.mean, model.decode_latent(prepared.base)
        classes = prepared.density_class.to(guess)[:, None, None, None].expand(-1, 1, *guess.shape[-2:])
        return (prepared.guess.predicted_variance,
                *(model.decode_residual(r0, prepared, base) - guess for r0 in residuals),
                interior_of(batch["y"], batch["interior"]) - guess, classes, prepared.gaps[:, None].to(guess))

    samples = {}
    with progress_bar((2 * settings.folds if backgrounds is None else 0) + len(HELD_OUT), progress,
                      "network calibration") as bar:
        if backgrounds is None:
            backgrounds = calibration_backgrounds(data.field, data.sst, settings, seed=training.seed,
                                                  choice=model.analysis.background.choice, bar=bar)
        for over in HELD_OUT:
            bar.set_description(f"network calibration ({over})")
            samples[over] = ocean_samples(sample, calibration_patches(data, backgrounds[over], training),
                                          training.batch_size, device=device, seed=training.seed,
                                          batches=settings.batches, bar=bar)
            bar.update()
    found = {over: (*part[:4], part[4][:, 0].astype(int), part[5][:, 0] > 0.5)
             for over, part in samples.items() if part is not None}
    where = lambda part, kept: tuple(values[kept] for values in part[1:5])  # noqa: E731
    gate = _correction_gate([where(part, ~part[5]) for part in found.values()], *model.correction_gate.shape)
    gap_gate = _correction_gate([where(part, part[5]) for part in found.values()], *model.correction_gate.shape) \
        if any(part[5].any() for part in found.values()) else gate
    model.correction_gate.copy_(torch.from_numpy(gate))
    model.gap_correction_gate.copy_(torch.from_numpy(gap_gate))
    errors = {over: ErrorModel.fit(variance, _mean_square(first, second, miss,
                                                          np.where(gaps[:, None], gap_gate[classes], gate[classes])),
                                   gaps=gaps)
              for over, (variance, first, second, miss, classes, gaps) in found.items()}
    for part in (part for error in errors.values() for part in error.modules()):
        part.ratio.clamp_(min=MIN_ERROR_RATIO)  # each bin sums products, not squares: positive over many, not surely
    model.error_model, model.covered_error_model = errors.get("space"), errors.get("time")


def _one_step(model: LatentDiffusion, batch: dict[str, torch.Tensor], random: torch.Generator, data: TrainingData,
              device: torch.device) -> tuple[Prepared, list[torch.Tensor]]:
    """The prepared batch (simulated or real observations; the analysis over the patches' boxes, the rest over
    the patches) and the network's clean residuals from two draws of pure noise: each its estimate of the
    residual's mean given the condition, with the network's own noise, independent between the draws."""
    prepared = model.prepare(batch_inputs(batch, data.observations, random, data.depth_max_index, clouds=True),
                             with_variance=True, interior=batch["interior"])
    denoiser = ConditionedDenoiser(model, prepared.condition, {k: batch[k] for k in _CONTEXT})
    t = torch.full((len(prepared.base),), model.schedule.steps - 1, device=device)
    residuals = []
    for _ in range(2):
        noise = torch.randn(prepared.base.shape, generator=random).to(device)
        residuals.append(model.schedule.predict_x0(denoiser(noise, t), noise, t))
    return prepared, residuals


def _correction_gate(samples: list[tuple[np.ndarray, ...]], classes: int, levels: int) -> np.ndarray:
    """Per density class and level ``(classes, levels)``, the least-squares weight in [0, 1] of the correction of
    the mean of :data:`CALIBRATED_MEMBERS` members against the truth's departure from the guess, over ``samples``
    of ``(first, second, departure, class)``: two one-step corrections of the guess from independent noises, and
    the departure (``(columns, levels)`` each), and ``(columns,)``. The corrections' mean against the departure
    over their product (the square of the correction's signal, free of the network's noise) plus the noise's
    variance left in the members' mean; 0 where the correction does not help, below 1 where it overshoots. A class
    that saw nothing at a level takes the weight over every class; 1 where nothing was seen at all."""
    along, power = np.zeros((classes, levels)), np.zeros((classes, levels))
    for first, second, miss, member in samples:
        valid = np.isfinite(first) & np.isfinite(second) & np.isfinite(miss)
        first, second, miss = (np.where(valid, values, 0.0).astype(np.float64) for values in (first, second, miss))
        np.add.at(along, member, 0.5 * (first + second) * miss)
        np.add.at(power, member, _mean_square(first, second, 0.0, 1.0))
    every_along, every_power = along.sum(axis=0), power.sum(axis=0)
    pooled = np.divide(every_along, every_power, out=np.ones(levels), where=every_power > 0)
    gate = np.divide(along, power, out=np.broadcast_to(pooled, (classes, levels)).copy(), where=power > 0)
    return gate.clip(0.0, 1.0).astype(np.float32)


def _mean_square(first: np.ndarray, second: np.ndarray, miss: np.ndarray | float, weight: np.ndarray | float
                 ) -> np.ndarray:
    """An unbiased estimate of the square of ``weight`` x the mean of :data:`CALIBRATED_MEMBERS` corrections less
    ``miss``, from two corrections ``first`` and ``second`` whose noises are independent: the product of their
    errors (its expectation is the square of the signal's error) plus the noise's variance the mean keeps."""
    spread = np.square(weight * (first - second)) / (2.0 * CALIBRATED_MEMBERS)
    return (weight * first - miss) * (weight * second - miss) + spread


def _set_trainable(autoencoder: DepthBandAutoencoder, finetune: str | None) -> None:
    autoencoder.requires_grad_(False)
    if finetune == "decoder":
        for module in (autoencoder.decoder, autoencoder.to_output):
            module.requires_grad_(True)

