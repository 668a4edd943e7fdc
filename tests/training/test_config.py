"""Settings: a bad choice is refused with the choices named, and a chosen noise-level draw reaches training."""

from __future__ import annotations

from dataclasses import replace

import pytest

import xdepthrecon
from xdepthrecon import AnalysisConfig, AutoencoderConfig, DiffusionConfig, ObservationConfig
from xdepthrecon.diffusion.schedule import NoiseSchedule
from xdepthrecon.training.config import AUTOENCODER_TRAINING, DIFFUSION_TRAINING

from tests.conftest import glorys_like


def test_an_unknown_noise_level_draw_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="noise_levels must be one of.*uniform.*noisy.*'loud'"):
        DiffusionConfig(noise_levels="loud")


@pytest.mark.parametrize("draw", ["uniform", "noisy"])
def test_training_draws_the_noise_levels_as_configured(draw, monkeypatch):
    cube = glorys_like(times=3, depths=5, lats=24, lons=32, seed=2)
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    ae = xdepthrecon.train_autoencoder(cube, config=AutoencoderConfig(latent_channels=3, encoder_channels=(8, 8),
                                                                      decoder_channels=(8, 8)),
                                       training=replace(AUTOENCODER_TRAINING, patch_size=16), epochs=1,
                                       progress=False)
    asked, draw_levels = [], NoiseSchedule.draw_levels

    def recorded(self, count, generator=None, draw="uniform"):
        asked.append(draw)
        return draw_levels(self, count, generator, draw)

    monkeypatch.setattr(NoiseSchedule, "draw_levels", recorded)
    xdepthrecon.train_diffusion(cube, sst, ae, config=DiffusionConfig(dim=8, diffusion_steps=100, noise_levels=draw),
                                analysis=AnalysisConfig(folds=2, batches=2, neighbours=16),
                                observations=ObservationConfig(density=(0.05, 0.2)),
                                training=replace(DIFFUSION_TRAINING, patch_size=16, batch_size=4, val_fraction=0.25),
                                epochs=1, device="cpu", progress=False)
    assert asked and set(asked) == {draw}
