"""Training the conditional latent diffusion model as a library function.

With real profiles, the condition is their gridded form; with ``profiles=None`` the observations are
simulated from the truth on the fly (an observing-system simulation at a random density per patch),
so a user with only a reanalysis can train. The autoencoder is frozen by default.
"""

from __future__ import annotations

import copy
import time
import warnings
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import xarray as xr

from xdepthrecon.training import _replicas
from xdepthrecon._precision import network_precision
from xdepthrecon import checkpoint as _checkpoint
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader
from xdepthrecon.baselines._inputs import unit_vectors
from xdepthrecon.baselines.optimal_interpolation import MIN_FIT_OBSERVATIONS
from xdepthrecon.io.cube import as_cube
from xdepthrecon.analysis.departures import DepartureAnalysis
from xdepthrecon.analysis.background import LatentBackground, cross_validated_background
from xdepthrecon.analysis.errors import ErrorModel, predictor_values
from xdepthrecon.diffusion.latent import LatentDiffusion, TemperatureGuess
from xdepthrecon.diffusion.schedule import NoiseSchedule
from xdepthrecon.encoding import encode
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.models.autoencoder import DepthBandAutoencoder, reconstruction_loss
from xdepthrecon.models.unet import ConditionalUNet
from xdepthrecon.io.sst import align_sst
from xdepthrecon.training.autoencoder import epoch_record, pick_device

_CONTEXT = ("latitude", "longitude", "day_of_year")
FINETUNE = (None, "decoder", "all")
#: Length scale (grid cells) of the observation support that bins the error model, without a first guess.
SUPPORT_SCALE = 6.0


class BatchCondition(NamedTuple):
    """A batch's condition, the observations it was made from and the temperature guess (None without a
    background)."""

    condition: torch.Tensor
    x: torch.Tensor
    x_mask: torch.Tensor
    guess: TemperatureGuess | None


def simulate_observations(
    y: torch.Tensor,
    density: tuple[float, float],
    generator: torch.Generator,
    depth_max_index: int | None = None,
    noise: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Observe random ocean columns of full cubes ``y`` (batch, levels, H, W), as profiles would.

    Each batch item observes a fraction of its ocean columns drawn log-uniformly from ``density``
    (low, high); observed columns keep their levels down to ``depth_max_index`` (exclusive) and get
    Gaussian ``noise`` (degC std). Returns ``(x, x_mask)`` with NaN in ``x`` where unobserved.
    """
    batch, _, height, width = y.shape
    low, high = (float(np.log(d)) for d in density)
    fraction = torch.exp(torch.rand(batch, generator=generator) * (high - low) + low).to(y.device)
    ocean = ~torch.isnan(y).all(dim=1)
    draws = torch.rand(batch, height, width, generator=generator).to(y.device)
    columns = (draws < fraction[:, None, None]) & ocean
    mask = columns[:, None].expand_as(y) & ~torch.isnan(y)
    if depth_max_index is not None:
        mask = mask.clone()
        mask[:, depth_max_index:] = False
    values = y + noise * torch.randn(y.shape, generator=generator).to(y.device) if noise else y
    return torch.where(mask, values, torch.nan), mask


def _statistics(latent: xr.DataArray, sst: xr.DataArray) -> dict[str, np.ndarray]:
    dims = ("time", "latitude", "longitude")
    latent_mean, latent_std = (np.asarray(v) for v in xr.concat([latent.mean(dims), latent.std(dims)], "s").values)
    return {"latent_mean": latent_mean, "latent_std": np.maximum(latent_std, 1e-6),
            "surface_mean": np.array([float(sst.mean())]), "surface_std": np.array([max(float(sst.std()), 1e-6)])}


def train_diffusion(
    cube: xr.Dataset | xr.DataArray,
    sst: xr.Dataset | xr.DataArray,
    autoencoder: DepthBandAutoencoder,
    profiles: xr.Dataset | None = None,
    density: tuple[float, float] = (0.005, 0.05),
    depth_max: float | None = None,
    observation_noise: float = 0.01,
    epochs: int = 10,
    batch_size: int = 8,
    lr: float = 5e-5,
    ema: float = 0.9999,
    patch_size: int = 64,
    val_fraction: float = 0.1,
    dim: int = 32,
    mults: tuple[int, ...] = (1, 2, 4),
    attention: bool = True,
    context: bool = True,
    first_guess: tuple[float, ...] = (),
    background: bool = False,
    schedule: str = "cosine",
    target: str = "x0",
    diffusion_steps: int = 1000,
    finetune: str | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    checkpoint: str | PathLike[str] | None = None,
    progress: bool = True,
    window: str = "7D",
    fast: bool = False,
) -> LatentDiffusion:
    """Train a :class:`~xdepthrecon.diffusion.latent.LatentDiffusion` to generate a cube's latent.

    Parameters
    ----------
    cube
        The truth (reanalysis) cube to learn from, in any layout :func:`xdepthrecon.standardize` reads.
    sst
        Surface temperature on any grid (Kelvin or degC); aligned to the cube with :func:`xdepthrecon.align_sst`.
    autoencoder
        A trained :class:`~xdepthrecon.DepthBandAutoencoder` for the cube's levels.
    profiles
        Real profiles (:func:`xdepthrecon.read_profiles` form), gridded with ``window``; None simulates
        observations from ``cube`` at a random fraction of ocean columns in ``density`` per patch.
    density
        (low, high) fraction of ocean columns observed in simulated observations.
    depth_max, observation_noise
        Simulated profiles stop at ``depth_max`` metres and carry Gaussian noise (degC std).
    epochs, batch_size, lr
        Optimisation (AdamW).
    ema
        Decay of the exponential moving average of the denoiser weights (with the usual warm-up
        ``min(ema, (1 + n) / (10 + n))``); the returned model carries the averaged weights.
    patch_size, val_fraction
        Patch size (grid cells) and the fraction of windows held out for the validation loss.
    dim, mults, attention, context
        Denoiser size and FiLM conditioning on position and season (see
        :class:`~xdepthrecon.models.unet.ConditionalUNet`).
    first_guess
        Length scales (grid cells) of the successive-correction passes (largest first) that spread the
        observed latents into a dense first guess given to the denoiser
        (:func:`~xdepthrecon.stats.smoothing.first_guess`); with the ``x0`` target it learns the
        correction to that guess.
        Empty: no first guess.
    background
        Fit a seasonal background of the latent with an SST regression to the training cube
        (:class:`~xdepthrecon.analysis.background.LatentBackground`, saved with the model): far from any
        profile the reconstruction starts from what the training data say about that place and season.
        The network then corrects the model's temperature guess (:meth:`LatentDiffusion.temperature_guess
        <xdepthrecon.diffusion.latent.LatentDiffusion.temperature_guess>`), whose departure analysis is
        fitted before training against backgrounds fitted without their own block of the map
        (cross-validated), as wrong as in a region the training data did not cover. Needs the training
        latents in memory (time x latent channels x grid).
    schedule, target, diffusion_steps
        Noise schedule kind, prediction target and number of noise levels.
    finetune
        None: the autoencoder stays frozen. ``"decoder"``: its decoder keeps learning the reconstruction
        of the truth from the (fixed) latent. ``"all"``: the whole autoencoder learns the reconstruction
        jointly with the denoiser.
    device, seed, checkpoint, progress
        As in :func:`xdepthrecon.train_autoencoder` (resume from ``checkpoint`` when it exists).
    window
        Time window for gridding real ``profiles``.
    fast
        Train the networks in bfloat16 autocast (GPUs, CPUs with AMX); weights and optimizer stay fp32.

    Returns
    -------
    LatentDiffusion
        In eval mode, with ``history`` (one dict per epoch: loss, val_loss, samples/s, seconds) and an
        ``error_model``: the averaged network's one-step error against the truth on the validation windows
        (the training windows when ``val_fraction=0``), by level and by the analysis's error variance (or
        the observation support, without a background), which floors the spread ``reconstruct`` reports
        (:class:`~xdepthrecon.analysis.errors.ErrorModel`). With a background, also an
        ``analysis`` and a ``covered_error_model``, the same error against backgrounds fitted without each
        time step, for cells the training data covered.
    """
    from tqdm.auto import tqdm

    if finetune not in FINETUNE:
        raise ValueError(f"finetune must be one of {FINETUNE}, got {finetune!r}")
    if background and finetune == "all":
        raise ValueError("background=True fits the background to the encoder's latents, so the encoder must stay "
                         "fixed: use finetune=None or finetune='decoder' with it")
    truth = as_cube(cube)
    thetao = truth.thetao
    autoencoder.check_levels(truth.depth.values)
    surface = align_sst(sst, truth).sst
    fields = {"y": thetao, "sst": surface}
    if profiles is not None:
        gridded = grid_profiles(profiles, like=truth, window=window)
        fields.update(x=gridded.x, x_mask=gridded.x_mask.astype("float32"))
    target_device = pick_device(device)
    path = None if checkpoint is None else Path(checkpoint)
    model = state = None
    if path is not None and path.exists():
        model = _checkpoint.load(path, device=target_device)
        state = _checkpoint.load_training_state(path)
        background = model.background is not None
    latent = encode(truth, autoencoder).latent.load() if model is None or background else None
    fitted = None
    if background:  # training sees the background it will be given
        fitted = model.background if model is not None else LatentBackground.fit(latent, surface)
        fields["background"] = _background_field(fitted, latent, surface)
    replicas = _replicas.join(target_device)
    shard = (replicas.rank, replicas.world)
    base = PatchDataset(fields, patch_size=patch_size, seed=seed)
    train_windows, val_windows = base.split(val_fraction) if val_fraction > 0 else (base.all_windows(), [])
    train_set = PatchDataset(fields, patch_size, base.patches_per_window, seed=seed, windows=train_windows, shard=shard)
    val_set = PatchDataset(fields, patch_size, base.patches_per_window, seed=seed + 1,
                           windows=val_windows, shard=shard) if val_windows else None
    depth_max_index = None if depth_max is None else int(np.searchsorted(truth.depth.values, depth_max, "right"))

    torch.manual_seed(seed)
    if model is None:
        conditions = LatentDiffusion.condition_channels(1, autoencoder.latent_channels, first_guess, background)
        denoiser = ConditionalUNet(autoencoder.latent_channels, conditions, dim=dim, mults=mults, attention=attention,
                                   context=context)
        model = LatentDiffusion(copy.deepcopy(autoencoder).cpu(), denoiser,
                                NoiseSchedule(schedule, diffusion_steps, target), **_statistics(latent, surface),
                                first_guess=first_guess, background=fitted).to(target_device)
    _set_trainable(model.autoencoder, finetune)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    averaged = copy.deepcopy(model.denoiser).requires_grad_(False)
    history: list[dict[str, Any]] = []
    start, updates = 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        model.denoiser.load_state_dict(state["live"])  # the file's model holds the averaged weights
        history, start, updates = list(state["history"]), int(state["epoch"]) + 1, int(state["updates"])
        torch.set_rng_state(state["rng"])
    # noise, noise levels and simulated observations: one stream per process (rank 0's is checkpointed)
    generator = torch.Generator().manual_seed(seed if replicas.main else hash((seed, replicas.rank, start)) % 2**63)
    if state is not None and replicas.main:
        generator.set_state(state["generator"])

    def batch_observations(batch: dict[str, torch.Tensor],
                           random: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The observations of a batch (``x``, ``x_mask``): the gridded profiles, or simulated from the truth."""
        if "x" in batch:
            return batch["x"], batch["x_mask"] > 0
        return simulate_observations(batch["y"], density, random, depth_max_index, observation_noise)

    def batch_condition(batch: dict[str, torch.Tensor], random: torch.Generator,
                        with_variance: bool = False) -> BatchCondition:
        """The condition of a batch, the observations it was made from and the temperature guess (if any)."""
        x, x_mask = batch_observations(batch, random)
        guess = None if not background else model.temperature_guess(
            x, x_mask, batch["background"], batch["sst"], batch["cell_latitude"], batch["cell_longitude"],
            with_variance)
        condition = model.condition(x, x_mask, batch["sst"], batch.get("background"),
                                    None if guess is None else guess.value)
        return BatchCondition(condition, x, x_mask, guess)

    def calibration_windows(over: str | None) -> PatchDataset:
        """Validation windows, with backgrounds fitted without their own block of the map or of the times."""
        calibration_fields = dict(fields)
        if over is not None:
            calibration_fields["background"] = cross_validated_background(latent, surface, seed=seed, over=over)
        # every process uses all windows, so the replicas keep identical models
        return PatchDataset(calibration_fields, patch_size, base.patches_per_window, seed=seed + 2,
                            windows=val_windows or train_windows)

    # a new region's backgrounds, for the departure analysis and the error model
    calibration_set = calibration_windows("space" if background else None) if start < epochs else None
    if background and state is None and calibration_set is not None:  # the network learns to correct its guess
        model.analysis = _fit_analysis(model, calibration_set, batch_size, target_device, batch_observations, seed)

    def batch_loss(batch: dict[str, torch.Tensor], random: torch.Generator) -> torch.Tensor:
        y = batch["y"]
        loss = model.loss(y, batch_condition(batch, random).condition, {k: batch[k] for k in _CONTEXT},
                          generator=random)
        if finetune is not None:
            valid = ~torch.isnan(y)
            target = torch.where(valid, model.autoencoder.normalize(y), 0.0)
            loss = loss + reconstruction_loss(model.autoencoder.normalize(model.autoencoder(y)), target, valid)
        return loss

    step = _replicas.wrap(_replicas.LossModule(model, batch_loss), replicas, target_device)
    bar = tqdm(range(start, epochs), desc="diffusion", disable=not (progress and replicas.main), unit="epoch")
    for epoch in bar:
        began = time.perf_counter()
        train_set.set_epoch(epoch)
        model.train()
        total, samples = 0.0, 0
        for batch in _replicas.together(PrefetchLoader(train_set, batch_size, device=target_device), replicas):
            with network_precision(target_device, fast):
                loss = step(batch, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            updates += 1
            _update_average(averaged, model.denoiser, min(ema, (1 + updates) / (10 + updates)))
            total += float(loss.detach()) * len(batch["y"])
            samples += len(batch["y"])
        val_total, val_samples = _validate(model, averaged, val_set, batch_size, target_device, batch_loss, seed)
        history.append(epoch_record(epoch, [total, samples, val_total, val_samples], began, bar, replicas))
        training_state = {"optimizer": optimizer.state_dict(), "epoch": epoch, "updates": updates,
                          "rng": torch.get_rng_state(), "generator": generator.get_state(), "history": history}
        if path is not None and replicas.main:
            _save_averaged(model, averaged, path, training_state)
        _replicas.barrier(replicas)
    if calibration_set is not None:  # the averaged network's validation errors set the model's error floor
        live, model.denoiser = model.denoiser, averaged
        model.error_model = _calibrate(model, calibration_set, batch_size, target_device, batch_condition, seed)
        model.covered_error_model = None if not background else _calibrate(  # a trained region, a new season
            model, calibration_windows("time"), batch_size, target_device, batch_condition, seed)
        model.denoiser = live
        if path is not None and replicas.main:
            _save_averaged(model, averaged, path, training_state)
        _replicas.barrier(replicas)
    model.denoiser.load_state_dict(averaged.state_dict())
    model.requires_grad_(False)
    model.history = history
    return model.eval()


def _background_field(background: LatentBackground, latent: xr.DataArray, sst: xr.DataArray) -> xr.DataArray:
    """The background at every time and cell of the training latents, as a field for the patches."""
    values = background.at(latent.time.values, latent.latitude.values, latent.longitude.values,
                           sst.transpose("time", "latitude", "longitude").values)
    return xr.DataArray(values.cpu().numpy(), dims=latent.dims, coords=latent.coords)


@torch.no_grad()
def _fit_analysis(model: LatentDiffusion, dataset: PatchDataset, batch_size: int, device: torch.device,
                  batch_observations, seed: int, batches: int = 16) -> DepartureAnalysis | None:
    """Covariances of the observations' departures from the temperature-space background on ``dataset``'s
    patches, each patch an independent field (None, with a warning, when too few columns are observed)."""
    random = torch.Generator().manual_seed(seed + 555)
    positions, departures = [], []
    for index, batch in enumerate(PrefetchLoader(dataset, batch_size, device=device)):
        if index == batches:
            break
        x, x_mask = batch_observations(batch, random)
        _, departure, observed = model.anchor(x, x_mask, batch["background"], batch["sst"])
        values = torch.where(observed, departure, torch.nan).cpu().numpy()
        latitude, longitude = batch["cell_latitude"].cpu().numpy(), batch["cell_longitude"].cpu().numpy()
        for item, field in enumerate(values):
            rows, columns = np.nonzero(np.isfinite(field).any(axis=0))
            positions.append(unit_vectors(latitude[item, rows], longitude[item, columns]))
            departures.append(field[:, rows, columns])
    per_level = sum((np.isfinite(d).sum(axis=1) for d in departures), np.zeros(1, dtype=int))
    if per_level.max() < MIN_FIT_OBSERVATIONS:
        warnings.warn("too few observed columns to fit the departure analysis; the model spreads departures by "
                      "its first guess instead. Train on more data or a higher density.", stacklevel=3)
        return None
    return DepartureAnalysis.fit(positions, departures, seed=seed)


@torch.no_grad()
def _calibrate(model: LatentDiffusion, dataset: PatchDataset, batch_size: int, device: torch.device,
               batch_condition, seed: int, batches: int = 16) -> ErrorModel | None:
    """The model's one-step estimate against the truth on ``dataset``: squared errors by level, binned by the
    analysis's error variance (with an analysis) or the observation support (None when no patch comes)."""
    random = torch.Generator().manual_seed(seed + 777)
    scale = max(model.first_guess) if model.first_guess else SUPPORT_SCALE
    predictor = "support" if model.analysis is None else "analysis"
    model.eval()
    predicted, errors = [], []
    for index, batch in enumerate(PrefetchLoader(dataset, batch_size, device=device)):
        if index == batches:
            break
        y = batch["y"]
        condition, x, x_mask, guess = batch_condition(batch, random, with_variance=True)
        observed = (x_mask.bool() & ~torch.isnan(x)).any(dim=1, keepdim=True)
        z = torch.randn((len(y), model.autoencoder.latent_channels, *y.shape[-2:]), generator=random).to(device)
        t = torch.full((len(y),), model.schedule.steps - 1, device=device)
        estimate = model.decode_latent(model.predict(z, t, condition, **{k: batch[k] for k in _CONTEXT}))
        if guess is not None:
            estimate = estimate + model.decoded_offset(guess.value, condition)
        ocean = ~torch.isnan(y).all(dim=1)
        variance = None if guess is None else guess.variance
        values = predictor_values(predictor, observed, scale, variance).expand(-1, y.shape[1], -1, -1)
        predicted.append(values.permute(0, 2, 3, 1)[ocean].cpu().numpy())
        errors.append((estimate - y).square().permute(0, 2, 3, 1)[ocean].cpu().numpy())
    if not errors:  # no patch to calibrate on: the spread stays the ensemble's
        return None
    return ErrorModel.fit(np.concatenate(predicted), np.concatenate(errors), scale, predictor=predictor)


def _set_trainable(autoencoder: DepthBandAutoencoder, finetune: str | None) -> None:
    autoencoder.requires_grad_(finetune == "all")
    if finetune == "decoder":
        for module in (autoencoder.decoder, autoencoder.to_output):
            module.requires_grad_(True)


def _save_averaged(model: LatentDiffusion, averaged: torch.nn.Module, path: Path, training_state: dict) -> None:
    """Save the model with the averaged denoiser (what ``xdepthrecon.load`` should give); the live weights
    travel in the training state for resuming."""
    live = model.denoiser
    model.denoiser = averaged
    try:
        _checkpoint.save(model, path, training_state={**training_state, "live": live.state_dict()})
    finally:
        model.denoiser = live


@torch.no_grad()
def _update_average(averaged: torch.nn.Module, current: torch.nn.Module, decay: float) -> None:
    for kept, new in zip(averaged.parameters(), current.parameters()):
        kept.lerp_(new, 1.0 - decay)


def _validate(model: LatentDiffusion, averaged: torch.nn.Module, dataset: PatchDataset | None, batch_size: int,
              device: torch.device, batch_loss, seed: int) -> tuple[float, int]:
    """Summed validation loss of the averaged denoiser (fixed noise, levels, observations) and patch count."""
    if dataset is None:
        return 0.0, 0
    live = model.denoiser
    model.denoiser = averaged
    model.eval()
    random = torch.Generator().manual_seed(seed + 12345)
    total, samples = 0.0, 0
    try:
        with torch.no_grad():
            for batch in PrefetchLoader(dataset, batch_size, device=device):
                total += float(batch_loss(batch, random)) * len(batch["y"])
                samples += len(batch["y"])
    finally:
        model.denoiser = live
    return total, samples
