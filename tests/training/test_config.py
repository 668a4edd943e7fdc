"""Settings: a bad choice is refused with the choices named, and the chosen noise-level draw and mean weight reach
training."""

from __future__ import annotations

from dataclasses import replace

import pytest

import xdepthrecon
from xdepthrecon import AnalysisConfig, DiffusionConfig, ObservationConfig
from xdepthrecon.diffusion.latent import LatentDiffusion
from xdepthrecon.training.config import DIFFUSION_TRAINING

from tests.conftest import glorys_like, tiny_autoencoder


def test_an_unknown_noise_level_draw_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="noise_levels must be one of.*uniform.*noisy.*'loud'"):
        DiffusionConfig(noise_levels="loud")


@pytest.mark.parametrize("draw", ["uniform", "noisy"])
def test_training_draws_the_noise_levels_and_mean_weight_as_configured(draw, monkeypatch):
    cube = glorys_like(times=3, depths=5, lats=24, lons=32, seed=2)
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    ae = tiny_autoencoder(cube)
    asked, loss = [], LatentDiffusion.loss

    def recorded(self, *arguments, **options):
        asked.append((options["levels"], options["mean_weight"]))
        return loss(self, *arguments, **options)

    monkeypatch.setattr(LatentDiffusion, "loss", recorded)
    config = DiffusionConfig(dim=8, diffusion_steps=100, noise_levels=draw, mean_weight=0.5)
    xdepthrecon.train_diffusion(cube, sst, ae, config=config,
                                analysis=AnalysisConfig(folds=2, batches=2, neighbours=16),
                                observations=ObservationConfig(density=(0.05, 0.2)),
                                training=replace(DIFFUSION_TRAINING, patch_size=16, batch_size=4, val_fraction=0.25),
                                epochs=1, device="cpu", progress=False)
    assert asked and set(asked) == {(draw, 0.5)}


def test_a_negative_mean_weight_is_refused():
    with pytest.raises(ValueError, match="mean_weight must be >= 0"):
        DiffusionConfig(mean_weight=-1.0)
