"""Training the depth-band autoencoder as a library function.

Patches come from :class:`~xdepthrecon.training.batches.PatchDataset` (read window by window, so a
dask-backed cube larger than memory is fine); the loss is computed in normalised units (every level counts
alike); the loop (:func:`~xdepthrecon.training.loop.fit`) shows loss, validation loss and samples/s, saves
every epoch atomically with ``checkpoint=``, and a later call resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import replace
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from xdepthrecon import checkpoint as _checkpoint
from xdepthrecon.io.cube import as_cube
from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.models.losses import reconstruction_loss
from xdepthrecon.stats.pca import PCACompressor
from xdepthrecon.training import _replicas
from xdepthrecon.training.correction_gate import fit_correction_gate
from xdepthrecon.training.config import (AUTOENCODER_TRAINING, AutoencoderConfig, TrainingConfig, as_record,
                                         resumable_record, with_epochs)
from xdepthrecon.training.loop import datasets_for, fit, pick_device, resume_state


def train_autoencoder(
    cube: xr.Dataset | xr.DataArray,
    *,
    config: AutoencoderConfig | None = None,
    training: TrainingConfig | None = None,
    epochs: int | None = None,
    device: str | torch.device | None = None,
    checkpoint: str | PathLike[str] | None = None,
    progress: bool = True,
) -> DepthBandAutoencoder:
    """Train a :class:`~xdepthrecon.DepthBandAutoencoder` on a temperature cube.

    Parameters
    ----------
    cube
        Training cube in any layout :func:`xdepthrecon.standardize` understands; may be dask-backed
        and larger than memory (patches are read window by window).
    config
        Architecture and loss (default :class:`~xdepthrecon.AutoencoderConfig`: the recipe that works).
    training
        Optimisation (default :data:`~xdepthrecon.training.config.AUTOENCODER_TRAINING`: 15 epochs, AdamW
        1e-3 with a cosine schedule, batches of 16 patches of 32 cells). Its ``val_fraction`` of the grid's
        regions is held out at every time step: the validation loss is on water the model never saw, and
        the correction's gate (``config.gate``) is fitted there.
    epochs
        Shortcut for ``training``'s number of epochs.
    device
        Where to train; default CUDA when available, else the CPU.
    checkpoint
        File to save to after every epoch (atomically); if it exists, training resumes from it, and a
        checkpoint trained with other settings is refused.
    progress
        Show a progress bar with loss, validation loss and samples/s.

    Returns
    -------
    DepthBandAutoencoder
        The trained model in eval mode, with per-level statistics and depth levels set, the correction's
        ``correction_gate`` (one value in [0, 1] per level; 0: the level is the EOF truncation), and
        ``history``: one dict per epoch (``epoch``, ``loss``, ``val_loss``, ``samples_per_s``, ``seconds``).
        Check it on a cube with :func:`xdepthrecon.compression_ceiling`.
    """
    config = config or AutoencoderConfig()
    training = with_epochs(training or AUTOENCODER_TRAINING, epochs)
    thetao = as_cube(cube).thetao
    if config.latent_channels > thetao.sizes["depth"]:
        raise ValueError(f"latent_channels={config.latent_channels} is more than the cube's {thetao.sizes['depth']} "
                         "depth levels; pass AutoencoderConfig(latent_channels=...) with at most that many")
    target = pick_device(device)
    replicas = _replicas.join(target)
    train_set, val_set, held_out = datasets_for({"y": thetao}, replace(training, halo=0),
                                                (replicas.rank, replicas.world), in_space=True)
    path = None if checkpoint is None else Path(checkpoint)
    settings = {"model": as_record(config), "training": resumable_record(training)}
    state = resume_state(path, settings)
    torch.manual_seed(training.seed)
    if state is not None:
        model = _checkpoint.load(path, device=target)
        model.check_levels(thetao.depth.values)
        if model.linear_path:
            model.correction_gate.fill_(1.0)  # the gate is fitted again once training ends
    else:
        mean, std = _level_statistics(thetao)
        model = DepthBandAutoencoder(thetao.sizes["depth"], config.latent_channels, config.encoder_channels,
                                     config.decoder_channels, linear_path=config.linear_path,
                                     depth=thetao.depth.values, mean=mean, std=std)
        if config.linear_path:
            model.init_linear_path(PCACompressor.fit(thetao, config.latent_channels, mean=model.mean, std=model.std))
        model = model.to(target)
    saved = fit(model, lambda batch, _: autoencoder_loss(model, batch["y"], config), (train_set, val_set), training,
                device=target, path=path, settings=settings, state=state, progress=progress, name="autoencoder")
    model.eval()
    if config.gate and model.linear_path and val_set is not None:
        gate = fit_correction_gate(model, thetao, held_out, max(training.patch_size // 2, 1))
        model.correction_gate.copy_(torch.as_tensor(gate, dtype=torch.float32))
        if path is not None and replicas.main:
            _checkpoint.save(model, path, training_state=saved)
    return model


def autoencoder_loss(model: DepthBandAutoencoder, y: torch.Tensor, config: AutoencoderConfig) -> torch.Tensor:
    """The autoencoder's reconstruction loss of a batch ``y`` (degC, NaN on land) in normalised units."""
    valid = ~torch.isnan(y)
    target = torch.where(valid, model.normalize(y), 0.0)
    return reconstruction_loss(model.normalize(model(y)), target, valid if config.masked_only else None,
                               l1_weight=config.l1_weight, l2_weight=config.l2_weight)


def _level_statistics(thetao: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Per-level mean and std (degC) over time and space, NaN skipped, in one pass over dask data."""
    dims = ("time", "latitude", "longitude")
    both = xr.concat([thetao.mean(dims), thetao.std(dims)], dim="statistic").compute()
    mean, std = both.values
    empty = thetao.depth.values[np.isnan(mean)]
    if empty.size:
        raise ValueError(f"depth levels {empty.tolist()} m hold no valid value in the training cube; "
                         "drop them (cube.sel(depth=...)) or train on a region with ocean at those depths.")
    return mean, np.maximum(std, 1e-3)
