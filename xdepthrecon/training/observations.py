"""The observations of a training batch: the gridded real profiles, or simulated from the truth.

With real profiles, a batch's observations are their gridded form; without, random ocean columns of the
truth are observed at a density drawn per patch (an observing-system simulation on the fly), so a user with
only a reanalysis can train. :func:`batch_inputs` turns a batch into the
:class:`~xdepthrecon.analysis.classical.AnalysisInputs` the analysis and the diffusion model take;
:func:`simulate_clouds` hides part of their SST, as clouds hide it from infrared satellites.
"""

from __future__ import annotations

import numpy as np
import torch

from xdepthrecon.analysis.classical import AnalysisInputs
from xdepthrecon.stats.smoothing import cells_per_scale, gaussian_mean
from xdepthrecon.training.config import ObservationConfig

#: Fraction of the patches whose SST :func:`simulate_clouds` leaves whole.
CLEAR_FRACTION = 0.5


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
                 depth_max_index: int | None = None, *, clouds: bool = False) -> AnalysisInputs:
    """The analysis inputs of a batch of patches holding ``y``, ``sst``, ``background``, the cells'
    coordinates, optionally the ``climate`` (the background without SST) and, with real profiles, ``x`` and
    ``x_mask`` (else simulated from ``y``); with ``clouds``, part of the SST hidden as
    ``observations.cloud_cover`` says (:func:`simulate_clouds`, which needs the ``climate``)."""
    if "x" in batch:
        x, mask = batch["x"], batch["x_mask"] > 0
    else:
        x, mask = simulate_observations(batch["y"], observations, generator, depth_max_index)
    inputs = AnalysisInputs(x, mask, batch["sst"], batch["background"], batch["cell_latitude"],
                            batch["cell_longitude"], ~torch.isnan(batch["y"]).all(dim=1), batch.get("climate"))
    if clouds and observations.cloud_cover > 0:
        inputs = simulate_clouds(inputs, batch["climate"], observations, generator)
    return inputs


def simulate_clouds(inputs: AnalysisInputs, climate: torch.Tensor, observations: ObservationConfig,
                    generator: torch.Generator) -> AnalysisInputs:
    """``inputs`` with part of each patch's SST hidden under simulated clouds, and its background as the analysis
    computes it there.

    A :data:`CLEAR_FRACTION` of the patches keep their SST; each other hides a fraction of its ocean cells drawn
    uniformly in ``[0, observations.cloud_cover]``: the cells where white noise, smoothed by a Gaussian whose
    length is drawn log-uniformly in ``[1/2, 2] * observations.cloud_scale_km`` (on the patch's own grid), is
    highest. Where the SST is hidden the background has no SST term (as
    :meth:`~xdepthrecon.analysis.background.SeasonalBackground.at` makes it for a missing SST): it is ``climate``
    (batch, levels, H, W), the background without SST. The bands' means in the cells around a cloud are left as
    computed with the whole SST (a small difference from an analysis of the clouded field).
    """
    batch, _, height, width = inputs.sst.shape
    draws = torch.rand(batch, 3, generator=generator)
    ocean = torch.ones(batch, height, width, dtype=torch.bool) if inputs.ocean is None else inputs.ocean.cpu()
    hidden = torch.zeros(batch, 1, height, width, dtype=torch.bool)
    noise = torch.randn(batch, 1, height, width, generator=generator)
    for item in range(batch):
        cover = float(draws[item, 1]) * observations.cloud_cover
        if draws[item, 0] < CLEAR_FRACTION or cover <= 0.0 or not ocean[item].any():
            continue
        scale = observations.cloud_scale_km * 2.0 ** (2.0 * float(draws[item, 2]) - 1.0)
        sigma = cells_per_scale(scale, inputs.latitude[item].cpu(), inputs.longitude[item].cpu())
        field = gaussian_mean(noise[item:item + 1], torch.ones_like(noise[item:item + 1]), sigma)[0, 0]
        threshold = torch.quantile(field[ocean[item]], 1.0 - cover)
        hidden[item, 0] = (field > threshold) & ocean[item]
    hidden = hidden.to(inputs.sst.device)
    return inputs._replace(sst=torch.where(hidden, torch.nan, inputs.sst),
                           background=torch.where(hidden, climate, inputs.background), climate=climate)
