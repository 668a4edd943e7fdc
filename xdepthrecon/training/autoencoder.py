"""Training the depth-band autoencoder as a library function.

The loop is plain PyTorch: patches come from :class:`~xdepthrecon.training.batches.PatchDataset` (read window
by window, so a dask-backed cube larger than memory is fine), the loss is computed in normalised
units (every level counts alike), progress shows loss, validation loss and samples/s, and with
``checkpoint=`` every epoch is saved atomically and a later call resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import time
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from xdepthrecon.training import _replicas
from xdepthrecon._precision import network_precision
from xdepthrecon import checkpoint as _checkpoint
from xdepthrecon.stats.pca import PCACompressor
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader
from xdepthrecon.io.cube import as_cube
from xdepthrecon.models.autoencoder import DepthBandAutoencoder, reconstruction_loss

_SCHEDULES = ("constant", "cosine")


def epoch_record(epoch: int, sums: list[float], began: float, bar, replicas: _replicas.Replicas) -> dict[str, Any]:
    """The history entry of one epoch (mean loss, validation loss, samples/s), also shown on the progress bar.

    ``sums`` holds this process's summed training loss, patches, summed validation loss and validation
    patches; they are added over all training processes first.
    """
    total, samples, val_total, val_samples = _replicas.sums(sums, replicas)
    val_loss = val_total / val_samples if val_samples else float("nan")
    seconds = time.perf_counter() - began
    record = {"epoch": epoch, "loss": total / max(samples, 1), "val_loss": val_loss,
              "samples_per_s": samples / seconds if seconds > 0 else float("nan"), "seconds": seconds}
    bar.set_postfix(loss=f"{record['loss']:.4f}", val=f"{record['val_loss']:.4f}", rate=f"{record['samples_per_s']:.1f}/s")
    return record


def pick_device(device: str | torch.device | None) -> torch.device:
    """The device to train on: ``device`` if given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = os.environ.get("LOCAL_RANK")  # one GPU per process under torchrun
    return torch.device("cuda" if local_rank is None else f"cuda:{int(local_rank)}")


def train_autoencoder(
    cube: xr.Dataset | xr.DataArray,
    latent_channels: int = 12,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-4,
    lr_schedule: str = "constant",
    l1_weight: float = 1.0,
    l2_weight: float = 0.5,
    masked_only: bool = True,
    patch_size: int = 64,
    val_fraction: float = 0.1,
    device: str | torch.device | None = None,
    seed: int = 0,
    checkpoint: str | PathLike[str] | None = None,
    progress: bool = True,
    encoder_channels: tuple[int, ...] = (64, 96, 128),
    decoder_channels: tuple[int, ...] = (128, 96, 64),
    patches_per_window: int | None = None,
    max_land_fraction: float = 0.9,
    augment: bool = True,
    linear_path: bool = False,
    fast: bool = False,
) -> DepthBandAutoencoder:
    """Train a :class:`~xdepthrecon.DepthBandAutoencoder` on a temperature cube.

    Parameters
    ----------
    cube
        Training cube in any layout :func:`xdepthrecon.standardize` understands; may be dask-backed
        and larger than memory (patches are read window by window).
    latent_channels, encoder_channels, decoder_channels
        Architecture (see :class:`~xdepthrecon.DepthBandAutoencoder`).
    epochs
        Total number of epochs; when resuming from ``checkpoint``, training continues up to this count.
    batch_size, lr
        Patches per step and AdamW learning rate.
    lr_schedule
        ``"constant"``: ``lr`` throughout; ``"cosine"``: ``lr * (1 + cos(pi * epoch / epochs)) / 2`` in each
        epoch, from ``lr`` down towards 0 (a function of the epoch, so resuming keeps it).
    l1_weight, l2_weight
        Loss weights of the L1 and L2 (MSE) terms, in normalised units.
    masked_only
        True: the loss covers only valid values (land and below-bottom NaNs never count). False: NaN
        positions count too, with the level mean as their target (the reference system's default);
        either way NaN never reaches the network.
    patch_size
        Patch height and width in grid cells.
    val_fraction
        Fraction of the cube's windows (whole blocks of one time step) held out for validation.
    device
        Where to train; default CUDA when available, else the CPU.
    seed
        Seeds weights, patch order and crops: the same seed gives the same model on the CPU.
    checkpoint
        File to save to after every epoch (atomically); if it exists, training resumes from it.
    progress
        Show a progress bar with loss, validation loss and samples/s.
    patches_per_window, max_land_fraction, augment
        Passed to :class:`~xdepthrecon.training.batches.PatchDataset`.
    linear_path
        Give the model a fixed linear path set to the EOFs of the training cube
        (:meth:`~xdepthrecon.DepthBandAutoencoder.init_linear_path`), so training starts from PCA
        truncation and learns the nonlinear correction. Default False: the reference architecture. On a
        CPU budget, ``linear_path=True, lr=1e-3, lr_schedule="cosine"`` is what beats PCA at the same latent
        size in every depth band (``benchmarks/bench_autoencoder_quality.py``).
    fast
        Train in bfloat16 autocast (GPUs, CPUs with AMX); weights and optimizer stay fp32.

    Returns
    -------
    DepthBandAutoencoder
        The trained model in eval mode, with per-level statistics and depth levels set, and
        ``history``: one dict per epoch (``epoch``, ``loss``, ``val_loss``, ``samples_per_s``, ``seconds``).
    """
    from tqdm.auto import tqdm

    if lr_schedule not in _SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {lr_schedule!r}")
    thetao = as_cube(cube).thetao
    target = pick_device(device)
    replicas = _replicas.join(target)
    shard = (replicas.rank, replicas.world)
    dataset = PatchDataset({"y": thetao}, patch_size=patch_size, patches_per_window=patches_per_window,
                           max_land_fraction=max_land_fraction, augment=augment, seed=seed)
    train_windows, val_windows = dataset.split(val_fraction) if val_fraction > 0 else (dataset.all_windows(), [])
    train_set = PatchDataset({"y": thetao}, patch_size, dataset.patches_per_window, max_land_fraction, augment,
                             seed, windows=train_windows, shard=shard)
    val_set = (PatchDataset({"y": thetao}, patch_size, dataset.patches_per_window, max_land_fraction, False,
                            seed + 1, windows=val_windows, shard=shard) if val_windows else None)

    path = None if checkpoint is None else Path(checkpoint)
    torch.manual_seed(seed)
    if path is not None and path.exists():
        model = _checkpoint.load(path, device=target)
        state = _checkpoint.load_training_state(path)
        _check_resumable(model, path, thetao, latent_channels, encoder_channels, decoder_channels, linear_path)
    else:
        mean, std = _level_statistics(thetao)
        model = DepthBandAutoencoder(thetao.sizes["depth"], latent_channels, encoder_channels, decoder_channels,
                                     linear_path=linear_path, depth=thetao.depth.values, mean=mean, std=std)
        if linear_path:
            model.init_linear_path(PCACompressor.fit(thetao, latent_channels, mean=model.mean, std=model.std))
        model = model.to(target)
        state = None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    step = _replicas.wrap(_replicas.LossModule(model, lambda y: _loss(model, y, masked_only, l1_weight, l2_weight)),
                          replicas, target)
    history: list[dict[str, Any]] = []
    start = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        history = list(state["history"])
        start = int(state["epoch"]) + 1
        torch.set_rng_state(state["rng"])

    bar = tqdm(range(start, epochs), desc="autoencoder", disable=not (progress and replicas.main), unit="epoch")
    for epoch in bar:
        began = time.perf_counter()
        train_set.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr if lr_schedule == "constant" else lr * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0
        model.train()
        total, samples = 0.0, 0
        for batch in _replicas.together(PrefetchLoader(train_set, batch_size, device=target), replicas):
            with network_precision(target, fast):
                loss = step(batch["y"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch["y"])
            samples += len(batch["y"])
        val_total, val_samples = _validate(model, val_set, batch_size, target, masked_only, l1_weight, l2_weight)
        history.append(epoch_record(epoch, [total, samples, val_total, val_samples], began, bar, replicas))
        if path is not None and replicas.main:
            _checkpoint.save(model, path, training_state={"optimizer": optimizer.state_dict(), "epoch": epoch,
                                                          "rng": torch.get_rng_state(), "history": history})
        _replicas.barrier(replicas)
    model.eval()
    model.history = history
    return model


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


def _loss(model: DepthBandAutoencoder, y: torch.Tensor, masked_only: bool, l1: float, l2: float) -> torch.Tensor:
    valid = ~torch.isnan(y)
    target = torch.where(valid, model.normalize(y), 0.0)
    prediction = model.normalize(model(y))
    return reconstruction_loss(prediction, target, valid if masked_only else None, l1_weight=l1, l2_weight=l2)


def _validate(model: DepthBandAutoencoder, dataset: PatchDataset | None, batch_size: int, device: torch.device,
              masked_only: bool, l1: float, l2: float) -> tuple[float, int]:
    """Summed loss and number of validation patches (of this process's share)."""
    if dataset is None:
        return 0.0, 0
    model.eval()
    total, samples = 0.0, 0
    with torch.no_grad():
        for batch in PrefetchLoader(dataset, batch_size, device=device):
            total += float(_loss(model, batch["y"], masked_only, l1, l2)) * len(batch["y"])
            samples += len(batch["y"])
    return total, samples


def _check_resumable(model: DepthBandAutoencoder, path: Path, thetao: xr.DataArray, latent_channels: int,
                     encoder_channels: tuple[int, ...], decoder_channels: tuple[int, ...], linear_path: bool) -> None:
    wanted = {"latent_channels": latent_channels, "encoder_channels": list(encoder_channels),
              "decoder_channels": list(decoder_channels), "linear_path": linear_path}
    differ = {k: (model.config[k], v) for k, v in wanted.items() if model.config[k] != v}
    if differ:
        raise ValueError(f"cannot resume from {path}: it holds a model with other settings "
                         f"({', '.join(f'{k}: saved {a}, asked {b}' for k, (a, b) in differ.items())}); "
                         "use the same settings or another checkpoint path.")
    model.check_levels(thetao.depth.values)
