"""Calibration data: backgrounds fitted without the cells (or times) they are used at, and the error an
estimate makes against the truth on validation patches.

A background fitted on the very cells it is evaluated at is better there than anywhere new. The classical
analysis fits its departure covariances, and both it and the diffusion model measure their errors, against
cross-validated backgrounds (:func:`~xdepthrecon.analysis.background.cross_validated_background`): fitted
without their own block of the map (what a new region sees) or without their own time steps (what a new
season or year sees in a covered region). These phases take minutes on a large cube: they report to one
progress bar over the phases of a fit (:func:`progress_bar`).
"""

from __future__ import annotations

import warnings

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import torch
import xarray as xr

from xdepthrecon._halo import interior_of
from xdepthrecon.analysis.background import SlopeChoice, cross_validated_backgrounds
from xdepthrecon.analysis.classical import AnalysisConfig
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader

#: ``estimate(batch, generator) -> (estimate, predicted variance)``, each (batch, levels, H, W) over the patches
#: (without their halo).
Estimate = Callable[[dict[str, torch.Tensor], torch.Generator], tuple[torch.Tensor, torch.Tensor]]
#: ``sample(batch, generator) -> tensors``, each (batch, levels, H, W) over the patches (without their halo).
Sample = Callable[[dict[str, torch.Tensor], torch.Generator], tuple[torch.Tensor, ...]]
#: The two ways of holding data out of a background, and what each calibrates.
HELD_OUT = ("space", "time")


def progress_bar(total: int, progress: bool, phase: str) -> Any:
    """One progress bar over a run of phases (``total`` steps), starting with ``phase``: each phase names
    itself with ``bar.set_description``, advances it with ``bar.update()`` and shows its batches with
    :func:`counted`."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=phase, disable=not progress, unit="step")


def counted(items: Any, total: int, bar: Any | None) -> Iterator[Any]:
    """``items``, stopping after ``total`` of them, each counted on ``bar``'s postfix (``batch i/total``)."""
    for index, item in enumerate(islice(items, total)):
        if bar is not None:
            bar.set_postfix_str(f"batch {index + 1}/{total}")
        yield item
    if bar is not None:
        bar.set_postfix_str("", refresh=False)


def calibration_backgrounds(field: xr.DataArray, sst: xr.DataArray, settings: AnalysisConfig, seed: int = 0, *,
                            choice: SlopeChoice | None = None, bar: Any | None = None) -> dict[str, xr.Dataset]:
    """Backgrounds of the training ``field`` (time, channel, latitude, longitude) fitted without each block of
    the map (``"space"``) and without each fold of time steps (``"time"``), with the SST slopes' choice
    ``choice`` (the analysis's background's; None: chosen anew), each with its ``background`` and its ``climate``
    (:func:`~xdepthrecon.analysis.background.cross_validated_backgrounds`); ``bar`` (a :func:`progress_bar`)
    names each and counts its ``2 * settings.folds`` fits."""
    backgrounds = {}
    for over in HELD_OUT:
        if bar is not None:
            bar.set_description(f"backgrounds held out in {over}")
        backgrounds[over] = cross_validated_backgrounds(field, sst, harmonics=settings.harmonics, band=settings.band,
                                                        largest_scale_km=settings.sst_largest_scale_km,
                                                        slope_harmonics=settings.slope_harmonics, choice=choice,
                                                        block=settings.block, folds=settings.folds, seed=seed,
                                                        over=over, on_fit=None if bar is None else bar.update)
    return backgrounds


@torch.no_grad()
def ocean_samples(sample: Sample, dataset: PatchDataset, batch_size: int, *, device: torch.device, seed: int,
                  batches: int, bar: Any | None = None) -> tuple[np.ndarray, ...] | None:
    """The tensors ``sample`` returns on ``dataset``'s first ``batches`` batches (over the patches, without their
    halo), each ``(columns, levels)`` at the ocean columns (None when no patch comes); ``bar`` shows the batches
    done."""
    random = torch.Generator().manual_seed(seed + 777)
    parts = []
    loader = PrefetchLoader(dataset, batch_size, device=device)
    for batch in counted(loader, min(batches, len(loader)), bar):
        ocean = ~torch.isnan(interior_of(batch["y"], batch["interior"])).all(dim=1)
        parts.append([values.permute(0, 2, 3, 1)[ocean].cpu().numpy() for values in sample(batch, random)])
    if not parts:
        warnings.warn("no patch to calibrate on: every calibration window is land or NaN, so the stated error is "
                      "not calibrated (the analysis's predicted variance, or the ensemble's spread, is reported as "
                      "it is). Train on a cube with ocean values in its validation time steps, or a larger "
                      "val_fraction.", stacklevel=3)
        return None
    return tuple(np.concatenate(values) for values in zip(*parts))


def calibrate(estimate: Estimate, dataset: PatchDataset, batch_size: int, *, device: torch.device, seed: int,
              batches: int, bar: Any | None = None) -> ErrorModel | None:
    """The error model of ``estimate`` against the truth ``y`` on ``dataset``'s patches: squared errors by
    level, binned by the predicted variance (None when no patch comes); ``bar`` shows the batches done."""

    def sample(batch: dict[str, torch.Tensor], random: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        value, variance = estimate(batch, random)
        return variance, (value - interior_of(batch["y"], batch["interior"])).square()

    samples = ocean_samples(sample, dataset, batch_size, device=device, seed=seed, batches=batches, bar=bar)
    return None if samples is None else ErrorModel.fit(*samples)
