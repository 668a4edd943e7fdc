"""Simulated clouds on a training batch's SST: the asked cover, in patches, over the ocean only, with the
background the analysis would compute there."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdepthrecon import ObservationConfig
from xdepthrecon.analysis.classical import AnalysisInputs
from xdepthrecon.training.observations import CLEAR_FRACTION, simulate_clouds

BATCH, LEVELS, SIZE = 200, 3, 32


def _inputs() -> tuple[AnalysisInputs, torch.Tensor]:
    """A batch of 32 x 32 patches of 15.6 km cells (the nature run's grid), the first 4 columns land."""
    generator = torch.Generator().manual_seed(0)
    sst = 20.0 + torch.randn(BATCH, 1, SIZE, SIZE, generator=generator)
    ocean = torch.ones(BATCH, SIZE, SIZE, dtype=torch.bool)
    ocean[..., :4] = False
    sst[..., :4] = torch.nan
    background = torch.randn(BATCH, LEVELS, SIZE, SIZE, generator=generator)
    x = torch.full_like(background, torch.nan)
    latitude = (35.0 + 0.1405 * torch.arange(SIZE)).expand(BATCH, SIZE)
    longitude = (-50.0 + 0.1405 / np.cos(np.radians(37.0)) * torch.arange(SIZE)).expand(BATCH, SIZE)
    inputs = AnalysisInputs(x, torch.zeros_like(x, dtype=torch.bool), sst, background, latitude, longitude, ocean)
    return inputs, torch.full_like(background, -5.0)


def test_clouds_hide_up_to_the_asked_cover_of_the_ocean_in_patches_with_the_background_without_sst():
    inputs, climate = _inputs()
    clouded = simulate_clouds(inputs, climate, ObservationConfig(cloud_cover=0.6), torch.Generator().manual_seed(1))
    hidden = torch.isnan(clouded.sst[:, 0]) & inputs.ocean
    cover = hidden.float().sum(dim=(1, 2)) / inputs.ocean.float().sum(dim=(1, 2))
    clear = cover == 0
    assert abs(float(clear.float().mean()) - CLEAR_FRACTION) < 0.12  # half the patches keep their SST
    cloudy = cover[~clear]
    assert float(cloudy.max()) <= 0.6 + 1e-3 and float(cloudy.max()) > 0.5 and float(cloudy.min()) < 0.1
    assert abs(float(cloudy.mean()) - 0.3) < 0.06  # uniform in [0, 0.6]
    assert torch.equal(torch.isnan(clouded.sst[:, 0]) & ~inputs.ocean, ~inputs.ocean)  # land stays land
    kept = ~hidden & inputs.ocean
    assert torch.equal(clouded.sst[:, 0][kept], inputs.sst[:, 0][kept])
    spread = hidden[:, None].expand_as(climate)
    assert torch.equal(clouded.background[spread], climate[spread])
    assert torch.equal(clouded.background[~spread], inputs.background[~spread])
    # clouds of about 100 km (6 cells), not salt and pepper: few edges between neighbouring cells
    edges = (hidden[..., 1:] != hidden[..., :-1]).float().sum(dim=(1, 2))
    assert float((edges / hidden.float().sum(dim=(1, 2)).clamp(min=1))[cover > 0.2].mean()) < 0.5


def test_no_clouds_without_cover_and_bad_settings_refused():
    inputs, climate = _inputs()
    clouded = simulate_clouds(inputs, climate, ObservationConfig(cloud_cover=0.0), torch.Generator().manual_seed(1))
    assert torch.equal(torch.isnan(clouded.sst), torch.isnan(inputs.sst))
    for settings in ({"cloud_cover": 1.0}, {"cloud_cover": -0.1}, {"cloud_scale_km": 0.0}):
        with pytest.raises(ValueError, match="cloud_cover must be in"):
            ObservationConfig(**settings)
