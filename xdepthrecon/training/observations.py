"""The observations of a training batch: the gridded real profiles, or simulated from the truth.

With real profiles, a batch's observations are their gridded form; without, random ocean columns of the
truth are observed at a density drawn per patch (an observing-system simulation on the fly), so a user with
only a reanalysis can train. :func:`batch_inputs` turns a batch into the
:class:`~xdepthrecon.analysis.classical.AnalysisInputs` the analysis and the diffusion model take.
"""

from __future__ import annotations

import numpy as np
import torch

from xdepthrecon.analysis.classical import AnalysisInputs
from xdepthrecon.training.config import ObservationConfig


def simulate_observations(y: torch.Tensor, observations: ObservationConfig, generator: torch.Generator,
                          depth_max_index: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Observe random ocean columns of full cubes ``y`` (batch, levels, H, W), as profiles would.

    Each batch item observes a fraction of its ocean columns drawn log-uniformly from
    ``observations.density``; observed columns keep their levels down to ``depth_max_index`` (exclusive)
    and get Gaussian noise of ``observations.noise`` degC. Returns ``(x, x_mask)`` with NaN in ``x`` where
    unobserved.
    """
    batch, _, height, width = y.shape
    low, high = (float(np.log(d)) for d in observations.density)
    fraction = torch.exp(torch.rand(batch, generator=generator) * (high - low) + low).to(y.device)
    ocean = ~torch.isnan(y).all(dim=1)
    draws = torch.rand(batch, height, width, generator=generator).to(y.device)
    columns = (draws < fraction[:, None, None]) & ocean
    mask = columns[:, None].expand_as(y) & ~torch.isnan(y)
    if depth_max_index is not None:
        mask = mask.clone()
        mask[:, depth_max_index:] = False
    noise = observations.noise
    values = y + noise * torch.randn(y.shape, generator=generator).to(y.device) if noise else y
    return torch.where(mask, values, torch.nan), mask


def batch_inputs(batch: dict[str, torch.Tensor], observations: ObservationConfig, generator: torch.Generator,
                 depth_max_index: int | None = None) -> AnalysisInputs:
    """The analysis inputs of a batch of patches holding ``y``, ``sst``, ``background``, the cells'
    coordinates and, with real profiles, ``x`` and ``x_mask`` (else simulated from ``y``)."""
    if "x" in batch:
        x, mask = batch["x"], batch["x_mask"] > 0
    else:
        x, mask = simulate_observations(batch["y"], observations, generator, depth_max_index)
    return AnalysisInputs(x, mask, batch["sst"], batch["background"], batch["cell_latitude"],
                          batch["cell_longitude"], ~torch.isnan(batch["y"]).all(dim=1))
