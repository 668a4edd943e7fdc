"""The one training loop both models use: data-parallel replicas, a weight average, validation, atomic
checkpoints after every epoch, and a resume that refuses a checkpoint trained with other settings.

A trainer builds (or loads, through :func:`resume_state`) its model, a loss ``loss(batch, generator)`` and
its patch datasets, and hands them to :func:`fit`. Under ``torchrun`` each process trains on its shard
of the patches and gradients are averaged (:mod:`xdepthrecon.training._replicas`); rank 0 writes the
checkpoint.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xdepthrecon import checkpoint as _checkpoint
from xdepthrecon._precision import network_precision
from xdepthrecon.training import _replicas
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader
from xdepthrecon.training.config import TrainingConfig

Loss = Callable[[dict[str, torch.Tensor], torch.Generator], torch.Tensor]


def pick_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: ``device`` if given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = os.environ.get("LOCAL_RANK")  # one GPU per process under torchrun
    return torch.device("cuda" if local_rank is None else f"cuda:{int(local_rank)}")


@contextmanager
def swapped(model: nn.Module, name: str, replacement: nn.Module | None) -> Iterator[None]:
    """Within the block, ``model.<name>`` is ``replacement`` (nothing changes when it is None)."""
    if replacement is None:
        yield
        return
    kept = getattr(model, name)
    setattr(model, name, replacement)
    try:
        yield
    finally:
        setattr(model, name, kept)


def resume_state(path: Path | None, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training state saved at ``path`` (None when there is none), refused when it was trained with
    other ``settings`` than these (all but the number of epochs)."""
    if path is None or not path.exists():
        return None
    state = _checkpoint.load_training_state(path)
    saved = state.get("settings")
    if saved is None:
        raise ValueError(f"cannot resume from {path}: it holds no record of its training settings (saved by "
                         "xdepthrecon 0.1); start again with another checkpoint path.")
    differ = _differences(saved, dict(settings))
    if differ:
        raise ValueError(f"cannot resume from {path}: it was trained with other settings ("
                         + "; ".join(f"{key}: saved {a!r}, asked {b!r}" for key, (a, b) in differ.items())
                         + "); use the same settings or another checkpoint path.")
    return state


def _differences(saved: Mapping[str, Any], asked: Mapping[str, Any], prefix: str = "") -> dict[str, tuple]:
    differ = {}
    for key in sorted(set(saved) | set(asked)):
        a, b = saved.get(key), asked.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            differ.update(_differences(a, b, f"{prefix}{key}."))
        elif _plain(a) != _plain(b):
            differ[f"{prefix}{key}"] = (a, b)
    return differ


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def fit(model: nn.Module, loss: Loss, datasets: tuple[PatchDataset, PatchDataset | None], training: TrainingConfig,
        *, device: torch.device, path: Path | None = None, settings: Mapping[str, Any] | None = None,
        state: Mapping[str, Any] | None = None, average: str | None = None, progress: bool = True,
        name: str = "training") -> dict[str, Any]:
    """Train ``model`` for ``training.epochs`` epochs (from where ``state`` stopped) and return the last
    training state. With ``training.keep_best`` the model holds, on return and in every checkpoint, the
    validated weights (the average, where there is one) of the epoch with the lowest validation loss so far.

    Parameters
    ----------
    model
        The model; its parameters that require gradients are optimised. It is saved to ``path``.
    loss
        ``loss(batch, generator) -> loss`` of one batch of patches.
    datasets
        Training patches and validation patches (None: no validation loss).
    training
        Optimisation settings.
    device
        Where to train.
    path, settings
        Checkpoint written atomically after every epoch (rank 0), with ``settings`` for :func:`resume_state`.
    state
        A saved training state to resume from.
    average
        Name of the submodule whose weights are averaged (``training.ema``) and, with ``training.keep_best``,
        kept (the whole model when None); validation and the saved model use the average, and the model
        holds it (or the best of it) on return.
    progress, name
        Progress bar and its label.

    Returns
    -------
    dict
        The training state (optimizer, epoch, generator and random states, ``history``, ``best_epoch``, the
        live weights of the trained (sub)module and its average where the checkpoint's model holds other
        weights), as saved.
    """
    from tqdm.auto import tqdm

    train_set, val_set = datasets
    replicas = _replicas.join(device)
    step = _replicas.wrap(_replicas.LossModule(model, loss), replicas, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=training.lr,
                                  weight_decay=training.weight_decay)
    trained = model if average is None else getattr(model, average)
    averaged = None
    if average is not None and training.ema is not None:
        averaged = copy.deepcopy(trained).requires_grad_(False)
    history, start, updates = [], 0, 0
    best, best_epoch = None, None  # a copy of the validated weights at the lowest validation loss
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state.get("best_epoch") is not None:  # the checkpoint's model holds the best weights
            best, best_epoch = copy.deepcopy(trained).requires_grad_(False), int(state["best_epoch"])
        if averaged is not None and "average" in state:
            averaged.load_state_dict(state["average"])
        if "live" in state:  # else the checkpoint's model holds the live weights
            trained.load_state_dict(state["live"])
        history, start, updates = list(state["history"]), int(state["epoch"]) + 1, int(state["updates"])
        torch.set_rng_state(state["rng"])
    validated = trained if averaged is None else averaged
    seed = training.seed
    generator = torch.Generator().manual_seed(seed if replicas.main else hash((seed, replicas.rank, start)) % 2**63)
    if state is not None and replicas.main:
        generator.set_state(state["generator"])
    saved = dict(state) if state is not None else {}
    bar = tqdm(range(start, training.epochs), desc=name, disable=not (progress and replicas.main), unit="epoch")
    for epoch in bar:
        began = time.perf_counter()
        train_set.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(training, epoch)
        model.train()
        total, samples = 0.0, 0
        for batch in _replicas.together(PrefetchLoader(train_set, training.batch_size, device=device), replicas):
            with network_precision(device, training.fast):
                value = step(batch, generator)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            updates += 1
            if averaged is not None:
                _update_average(averaged, trained, min(training.ema, (1 + updates) / (10 + updates)))
            total += float(value.detach()) * len(batch["y"])
            samples += len(batch["y"])
        with swapped(model, average, averaged):
            val_total, val_samples = _validate(model, loss, val_set, training, device)
        history.append(_epoch_record(epoch, [total, samples, val_total, val_samples], began, bar, replicas))
        if training.keep_best and _improves(history, best_epoch):
            best, best_epoch = copy.deepcopy(validated).requires_grad_(False), epoch
        saved = {"optimizer": optimizer.state_dict(), "epoch": epoch, "updates": updates,
                 "rng": torch.get_rng_state(), "generator": generator.get_state(), "history": history,
                 "settings": dict(settings or {}), "best_epoch": best_epoch}
        if averaged is not None or best is not None:
            saved["live"] = copy.deepcopy(trained.state_dict())
        if averaged is not None and best is not None:
            saved["average"] = copy.deepcopy(averaged.state_dict())
        if path is not None and replicas.main:
            _save_with(model, average, best if best is not None else averaged, path, saved)
        _replicas.barrier(replicas)
    final = best if best is not None else averaged
    if final is not None and start < training.epochs:
        trained.load_state_dict(final.state_dict())
    model.history = history
    return saved


def _improves(history: list[dict[str, Any]], best_epoch: int | None) -> bool:
    """Whether the last epoch's validation loss is below that of ``best_epoch`` (any finite loss, when None)."""
    loss = history[-1]["val_loss"]
    if not math.isfinite(loss):
        return False
    return best_epoch is None or loss < next(r["val_loss"] for r in history if r["epoch"] == best_epoch)


def _save_with(model: nn.Module, average: str | None, shown: nn.Module | None, path: Path,
               state: Mapping[str, Any]) -> None:
    """Save ``model`` with the weights of ``shown`` (as its ``average`` submodule, or the whole model when
    ``average`` is None; the model's own weights when ``shown`` is None)."""
    if average is None:
        _checkpoint.save(shown if shown is not None else model, path, training_state=state)
        return
    with swapped(model, average, shown):
        _checkpoint.save(model, path, training_state=state)


def _learning_rate(training: TrainingConfig, epoch: int) -> float:
    if training.lr_schedule == "constant":
        return training.lr
    return training.lr * (1.0 + math.cos(math.pi * epoch / training.epochs)) / 2.0


@torch.no_grad()
def _update_average(averaged: nn.Module, current: nn.Module, decay: float) -> None:
    for kept, new in zip(averaged.parameters(), current.parameters()):
        kept.lerp_(new, 1.0 - decay)


def _validate(model: nn.Module, loss: Loss, dataset: PatchDataset | None, training: TrainingConfig,
              device: torch.device) -> tuple[float, int]:
    """Summed validation loss (fixed noise and observations) and number of patches (this process's share)."""
    if dataset is None:
        return 0.0, 0
    model.eval()
    random = torch.Generator().manual_seed(training.seed + 12345)
    total, samples = 0.0, 0
    with torch.no_grad():
        for batch in PrefetchLoader(dataset, training.batch_size, device=device):
            total += float(loss(batch, random)) * len(batch["y"])
            samples += len(batch["y"])
    return total, samples


def _epoch_record(epoch: int, sums: list[float], began: float, bar, replicas: _replicas.Replicas) -> dict[str, Any]:
    """The history entry of one epoch (mean loss, validation loss, samples/s), also shown on the progress bar;
    ``sums`` (summed loss, patches, summed validation loss, validation patches) are added over processes."""
    total, samples, val_total, val_samples = _replicas.sums(sums, replicas)
    val_loss = val_total / val_samples if val_samples else float("nan")
    seconds = time.perf_counter() - began
    record = {"epoch": epoch, "loss": total / max(samples, 1), "val_loss": val_loss,
              "samples_per_s": samples / seconds if seconds > 0 else float("nan"), "seconds": seconds}
    bar.set_postfix(loss=f"{record['loss']:.4f}", val=f"{record['val_loss']:.4f}",
                    rate=f"{record['samples_per_s']:.1f}/s")
    return record


def split_for(fields: Mapping[str, Any], training: TrainingConfig, in_space: bool = False) -> tuple[list, list]:
    """The (training, validation) windows of ``fields`` (no validation windows when ``training.val_fraction`` is
    0); ``in_space`` holds out regions at every time step (:meth:`PatchDataset.split_in_space`) instead of stretches
    of time or whole windows (:meth:`PatchDataset.split`, which reads the first field's first channel once)."""
    base = PatchDataset(fields, patch_size=training.patch_size, patches_per_window=training.patches_per_window,
                        seed=training.seed)
    if training.val_fraction <= 0:
        return base.all_windows(), []
    return (base.split_in_space if in_space else base.split)(training.val_fraction)


def datasets_for(fields: Mapping[str, Any], training: TrainingConfig, shard: tuple[int, int],
                 in_space: bool = False, *, split: tuple[list, list] | None = None
                 ) -> tuple[PatchDataset, PatchDataset | None, list]:
    """Training patches (this process's shard), validation patches (None without validation windows) and
    the windows a model is calibrated on (the validation windows, else the training windows), from ``split``
    (training and validation windows of the same grid) or :func:`split_for` ``(fields, training, in_space)``."""
    train_windows, val_windows = split if split is not None else split_for(fields, training, in_space)
    train_set = patches(fields, training, train_windows, augment=training.augment, shard=shard)
    val_set = patches(fields, training, val_windows, seed=training.seed + 1, shard=shard) if val_windows else None
    return train_set, val_set, val_windows or train_windows


def patches(fields: Mapping[str, Any], training: TrainingConfig, windows: list, *, augment: bool = False,
            seed: int | None = None, shard: tuple[int, int] = (0, 1)) -> PatchDataset:
    """Patches of ``fields`` from ``windows`` with the sizes (and halo) of ``training``."""
    return PatchDataset(fields, training.patch_size, training.patches_per_window, training.max_land_fraction,
                        augment, training.seed if seed is None else seed, windows=windows, shard=shard,
                        halo=training.halo)
