"""Calibration data: backgrounds fitted without the cells (or times) they are used at, and the error an
estimate makes against the truth on validation patches.

A background fitted on the very cells it is evaluated at is better there than anywhere new. The classical
analysis fits its departure covariances, and both it and the diffusion model measure their errors, against
cross-validated backgrounds (:func:`~xdepthrecon.analysis.background.cross_validated_background`): fitted
without their own block of the map (what a new region sees) or without their own time steps (what a new
season or year sees in a covered region).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import xarray as xr

from xdepthrecon.analysis.background import cross_validated_background
from xdepthrecon.analysis.classical import AnalysisConfig
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader

#: ``estimate(batch, generator) -> (estimate, predicted variance)``, each (batch, levels, H, W).
Estimate = Callable[[dict[str, torch.Tensor], torch.Generator], tuple[torch.Tensor, torch.Tensor]]
#: The two ways of holding data out of a background, and what each calibrates.
HELD_OUT = ("space", "time")


def calibration_backgrounds(field: xr.DataArray, sst: xr.DataArray, settings: AnalysisConfig,
                            seed: int = 0) -> dict[str, xr.DataArray]:
    """Backgrounds of the training ``field`` (time, channel, latitude, longitude) fitted without each block of
    the map (``"space"``) and without each fold of time steps (``"time"``)."""
    return {over: cross_validated_background(field, sst, harmonics=settings.harmonics, band=settings.band,
                                             block=settings.block, folds=settings.folds, seed=seed, over=over)
            for over in HELD_OUT}


@torch.no_grad()
def calibrate(estimate: Estimate, dataset: PatchDataset, batch_size: int, *, device: torch.device, seed: int,
              batches: int, progress: bool = False) -> ErrorModel | None:
    """The error model of ``estimate`` against the truth ``y`` on ``dataset``'s patches: squared errors by
    level, binned by the predicted variance (None when no patch comes)."""
    from tqdm.auto import tqdm

    random = torch.Generator().manual_seed(seed + 777)
    predicted, errors = [], []
    loader = PrefetchLoader(dataset, batch_size, device=device)
    for index, batch in enumerate(tqdm(loader, desc="calibrating", total=min(batches, len(loader)),
                                       disable=not progress, leave=False)):
        if index == batches:
            break
        y = batch["y"]
        value, variance = estimate(batch, random)
        ocean = ~torch.isnan(y).all(dim=1)
        predicted.append(variance.permute(0, 2, 3, 1)[ocean].cpu().numpy())
        errors.append((value - y).square().permute(0, 2, 3, 1)[ocean].cpu().numpy())
    if not errors:
        return None
    return ErrorModel.fit(np.concatenate(predicted), np.concatenate(errors))
