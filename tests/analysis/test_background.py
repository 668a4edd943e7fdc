"""The latent background: seasonal fit plus SST regression, filled into held-out cells, cross-validated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xdepthrecon
from xdepthrecon.baselines._inputs import seasonal_design
from xdepthrecon.diffusion import NoiseSchedule
from xdepthrecon.analysis.background import LatentBackground, _nearest, cross_validated_background
from xdepthrecon.diffusion.latent import LatentDiffusion
from xdepthrecon.models.unet import ConditionalUNet

from ..conftest import glorys_like


def _seasonal_latent(lats: int = 12, lons: int = 24, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray, dict]:
    """Latents that are exactly a smooth mean + annual cycle + 0.5 x an SST anomaly, and that SST."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2021-01-15", periods=12, freq="MS") + pd.Timedelta(days=14)
    lat = np.linspace(-55.0, 55.0, lats)
    lon = -180.0 + (np.arange(lons) + 0.5) * 360.0 / lons
    design = seasonal_design(time.values, 1)  # the fit's own regressors: the cycle is exactly representable
    phase = np.arctan2(design[:, 2], design[:, 1])
    mean = np.stack([np.cos(np.deg2rad(lat))[:, None] * np.ones(lons),
                     np.sin(np.deg2rad(lon))[None] * np.ones((lats, 1))])
    amplitude = 0.3 * mean
    sst_anomaly = rng.normal(size=(12, lats, lons))
    sst = 15.0 + 5.0 * np.cos(phase)[:, None, None] + sst_anomaly
    latent = (mean[None] + amplitude[None] * np.cos(phase)[:, None, None, None]
              + 0.5 * sst_anomaly[:, None])
    coords = {"time": time, "latitude": lat, "longitude": lon}
    latent_da = xr.DataArray(latent, dims=("time", "channel", "latitude", "longitude"), coords=coords)
    sst_da = xr.DataArray(sst, dims=("time", "latitude", "longitude"), coords=coords)
    return latent_da, sst_da, {"mean": mean, "phase": phase}


def test_the_fit_recovers_the_seasonal_cycle_and_the_sst_slope():
    latent, sst, _ = _seasonal_latent()
    background = LatentBackground.fit(latent, sst)
    torch.testing.assert_close(background.slope, torch.full_like(background.slope, 0.5), atol=1e-4, rtol=0)
    out = background.at(latent.time.values, latent.latitude.values, latent.longitude.values, sst.values)
    np.testing.assert_allclose(out.numpy(), latent.values, atol=1e-4)


def test_held_out_cells_are_filled_from_their_surroundings_and_follow_the_sst():
    latent, sst, truth = _seasonal_latent()
    hole = (slice(4, 7), slice(8, 12))
    held = latent.copy()
    held[:, :, hole[0], hole[1]] = np.nan
    out = LatentBackground.fit(held, sst).at(latent.time.values, latent.latitude.values, latent.longitude.values,
                                             sst.values).numpy()
    assert np.isfinite(out).all()
    error = np.abs(out[:, :, hole[0], hole[1]] - latent.values[:, :, hole[0], hole[1]])
    spread = np.abs(latent.values[:, :, hole[0], hole[1]] - latent.values.mean()).mean()
    assert error.mean() < 0.1 * spread  # smooth fields: the interpolated cycle plus the SST term is close


def test_another_grid_takes_the_nearest_stored_cell_across_the_dateline():
    stored = np.array([-179.5, -90.5, 0.5, 90.5])
    index = _nearest(stored, np.array([179.9, -179.0, 170.0, 1.0, 45.0]), periodic=True)
    np.testing.assert_array_equal(index, [0, 0, 0, 2, 2])
    np.testing.assert_array_equal(_nearest(np.array([0.0, 1.0, 2.0]), np.array([-5.0, 0.6, 9.0]), periodic=False),
                                  [0, 1, 2])


def test_cross_validated_backgrounds_are_out_of_sample():
    latent, sst, _ = _seasonal_latent(seed=1)
    noisy = latent + 0.3 * np.random.default_rng(2).normal(size=latent.shape)  # what no fit can predict
    fitted = LatentBackground.fit(noisy, sst).at(latent.time.values, latent.latitude.values,
                                                 latent.longitude.values, sst.values).numpy()
    crossed = cross_validated_background(noisy, sst, block=60.0, folds=3, seed=0)
    assert crossed.dims == ("time", "channel", "latitude", "longitude") and np.isfinite(crossed.values).all()
    in_sample = np.sqrt(np.mean((fitted - noisy.values) ** 2))
    out_of_sample = np.sqrt(np.mean((crossed.values - noisy.values) ** 2))
    assert out_of_sample > 1.1 * in_sample
    with pytest.raises(ValueError, match="folds"):
        cross_validated_background(noisy, sst, folds=1)
    by_time = cross_validated_background(noisy, sst, folds=3, seed=0, over="time")
    assert np.isfinite(by_time.values).all()
    assert np.sqrt(np.mean((by_time.values - noisy.values) ** 2)) > 1.1 * in_sample  # each month fitted without it
    with pytest.raises(ValueError, match="over"):
        cross_validated_background(noisy, sst, over="depth")


def test_the_background_knows_which_cells_the_training_data_covered():
    latent, sst, _ = _seasonal_latent()
    held = latent.where((latent.longitude < 0) | (latent.latitude > 20))  # a block with no training data
    background = LatentBackground.fit(held, sst)
    covered = background.covered_at(latent.latitude.values, latent.longitude.values).numpy()
    expected = ((latent.longitude < 0) | (latent.latitude > 20)).transpose("latitude", "longitude").values
    np.testing.assert_array_equal(covered, expected)


@pytest.fixture
def model_with_background():
    latent, sst, _ = _seasonal_latent(lats=16, lons=16)
    torch.manual_seed(0)
    ae = xdepthrecon.DepthBandAutoencoder(5, 2, (4,), (4,), depth=np.arange(5.0), mean=np.zeros(5), std=np.ones(5))
    channels = LatentDiffusion.condition_channels(1, 2, (2.0,), background=True)
    denoiser = ConditionalUNet(2, channels, dim=8, mults=(1,))
    model = LatentDiffusion(ae, denoiser, NoiseSchedule("cosine", 50, "x0"), np.zeros(2), np.ones(2),
                            first_guess=(2.0,), background=LatentBackground.fit(latent, sst))
    return model, latent, sst


def _first_month(model: LatentDiffusion, latent: xr.DataArray, sst: xr.DataArray) -> torch.Tensor:
    """The model's background latent at the first month of the test latents' grid."""
    return model.background.at(latent.time.values[:1], latent.latitude.values, latent.longitude.values,
                               sst.values[:1])


def _silent_sample(model: LatentDiffusion, x: torch.Tensor, mask: torch.Tensor, surface: torch.Tensor,
                   background: torch.Tensor) -> torch.Tensor:
    """What a model whose denoiser returns zeros decodes to (degC): its temperature guess."""
    guess = model.temperature_guess(x, mask, background, surface).value
    condition = model.condition(x, mask, surface, background, guess)
    for parameter in model.denoiser.parameters():
        parameter.data.zero_()
    z = model.predict(torch.randn(1, 2, 16, 16), torch.tensor([40]), condition)
    return model.decode_latent(z) + model.decoded_offset(guess, condition)


def test_a_silent_denoiser_returns_the_encoded_temperature_guess(model_with_background):
    model, latent, sst = model_with_background
    background = _first_month(model, latent, sst)
    x = torch.full((1, 5, 16, 16), torch.nan)
    mask = torch.zeros_like(x, dtype=torch.bool)
    surface = torch.randn(1, 1, 16, 16)
    guess = model.temperature_guess(x, mask, background, surface).value
    torch.testing.assert_close(guess, model.autoencoder.decode(background))  # no profile: the background
    condition = model.condition(x, mask, surface, background, guess)
    for parameter in model.denoiser.parameters():
        parameter.data.zero_()
    prediction = model.predict(torch.randn(1, 2, 16, 16), torch.tensor([10]), condition)
    torch.testing.assert_close(prediction, model.encode_target(guess))
    with pytest.raises(ValueError, match="has a background"):
        model.condition(x, mask, surface)
    with pytest.raises(ValueError, match="temperature guess"):
        model.condition(x, mask, surface, background)


def test_an_untrained_model_returns_the_observations_at_their_column_and_the_background_far_away(
        model_with_background):
    model, latent, sst = model_with_background
    background = _first_month(model, latent, sst)
    x = torch.full((1, 5, 16, 16), torch.nan)
    x[0, :3, 3, 4] = torch.tensor([20.0, 15.0, 9.0])  # one profile, three levels deep
    mask = ~torch.isnan(x)
    decoded = _silent_sample(model, x, mask, torch.randn(1, 1, 16, 16), background)
    torch.testing.assert_close(decoded[0, :3, 3, 4], x[0, :3, 3, 4])  # exact: no autoencoder error on top
    far = model.autoencoder.decode(background)
    torch.testing.assert_close(decoded[0, :, 14, 14], far[0, :, 14, 14], atol=1e-5, rtol=0)
    torch.testing.assert_close(decoded[0, 3:, 3, 4], far[0, 3:, 3, 4], atol=1e-5, rtol=0)  # unobserved levels
    assert model.decoded_offset(None, torch.zeros(1)) is None


def test_the_sst_departure_is_carried_down_by_slopes_fitted_to_the_profiles(model_with_background):
    model, latent, sst = model_with_background
    background = _first_month(model, latent, sst)
    decoded = model.autoencoder.decode(background)
    generator = torch.Generator().manual_seed(0)
    surface = decoded[:, :1] + torch.randn(1, 1, 16, 16, generator=generator)  # SST departs from the background
    slopes = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0])[None, :, None, None]
    truth = decoded + slopes * (surface - decoded[:, :1])
    mask = torch.zeros(1, 5, 16, 16, dtype=torch.bool)
    mask[..., ::4, ::3] = True  # 24 profiles
    guess = _silent_sample(model, torch.where(mask, truth, torch.nan), mask, surface, background)
    torch.testing.assert_close(guess, truth, atol=0.1, rtol=0)  # everywhere (slopes ~1 % shrunk by the ridge)
    few = mask & (torch.arange(16)[:, None] < 4)  # 6 profiles: too few for a slope, no SST term
    far = _silent_sample(model, torch.where(few, truth, torch.nan), few, surface, background)
    torch.testing.assert_close(far[..., 14, 14], decoded[..., 14, 14], atol=1e-4, rtol=0)


def test_each_region_gets_its_own_sst_slope(model_with_background):
    model, latent, sst = model_with_background
    model.slope_scale = 2.0
    background = _first_month(model, latent, sst)
    decoded = model.autoencoder.decode(background)
    surface = decoded[:, :1] + torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    west = (torch.arange(16) < 8).float()  # level 1 follows the SST in the west, not at all in the east
    truth = decoded.clone()
    truth[:, 1] += west * (surface - decoded[:, :1])[:, 0]
    mask = torch.ones(1, 5, 16, 16, dtype=torch.bool)
    guess, _, _ = model.anchor(truth, mask, background, surface)
    error = (guess - truth)[0, 1].abs().detach()
    one_slope = (0.5 * (surface - decoded[:, :1])[0, 0]).abs()  # the error of one slope for the whole field
    for region in (slice(0, 4), slice(12, 16)):  # away from where the regions meet
        assert error[:, region].mean() < 0.3 * one_slope[:, region].mean()


def test_sst_departures_too_small_to_define_a_slope_make_no_steep_one(model_with_background):
    model, latent, sst = model_with_background
    background = _first_month(model, latent, sst)
    decoded = model.autoencoder.decode(background)
    generator = torch.Generator().manual_seed(2)
    surface = decoded[:, :1] + 2.0  # the SST departs by 2 degC everywhere ...
    mask = torch.zeros(1, 5, 16, 16, dtype=torch.bool)
    mask[..., ::4, ::3] = True
    surface = torch.where(mask[:, :1], decoded[:, :1] + 0.001 * torch.randn(1, 1, 16, 16, generator=generator),
                          surface)  # ... but hardly at the profiles, which depart by up to 1 degC
    x = torch.where(mask, decoded + torch.rand(1, 5, 16, 16, generator=generator), torch.nan)
    guess, _, _ = model.anchor(x, mask, background, surface)
    assert (guess - decoded).abs().max() < 0.1  # no slope of hundreds carrying 2 degC down as hundreds


def test_the_background_survives_save_and_load(model_with_background, tmp_path):
    model, latent, sst = model_with_background
    loaded = xdepthrecon.load(model.save(tmp_path / "m.safetensors"))
    args = (latent.time.values, latent.latitude.values, latent.longitude.values, sst.values)
    torch.testing.assert_close(loaded.background.at(*args), model.background.at(*args), rtol=0, atol=0)


def test_training_with_a_background_and_reconstructing_from_it(tmp_path):
    cube = glorys_like(times=6, depths=6, lats=24, lons=32, seed=3)
    cube = cube.assign_coords(time=pd.date_range("2020-01-15", periods=6, freq="61D"))
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    ae = xdepthrecon.train_autoencoder(cube, epochs=1, latent_channels=3, encoder_channels=(8,),
                                       decoder_channels=(8,), patch_size=16, progress=False)
    options = dict(epochs=1, patch_size=16, dim=8, mults=(1,), batch_size=4, progress=False, diffusion_steps=50,
                   first_guess=(2.0,), background=True, checkpoint=tmp_path / "d.safetensors", density=(0.1, 0.3))
    model = xdepthrecon.train_diffusion(cube, sst, ae, **options)
    assert model.background is not None and model.background.latent.shape == (3, 3, 24, 32)
    assert model.analysis is not None and np.all(model.analysis.length_scale.numpy() > 0)
    loaded = xdepthrecon.load(tmp_path / "d.safetensors")
    assert loaded.analysis.covariances == model.analysis.covariances
    assert model.covered_error_model is not None and model.covered_error_model.predictor == "analysis"
    torch.testing.assert_close(loaded.covered_error_model.variance, model.covered_error_model.variance)
    with pytest.warns(UserWarning, match="too few observed columns"):
        sparse = xdepthrecon.train_diffusion(cube, sst, ae, **{**options, "checkpoint": None, "density": (1e-3, 2e-3)})
    assert sparse.analysis is None  # the first guess spreads the departures
    resumed = xdepthrecon.train_diffusion(cube, sst, ae, **{**options, "epochs": 2})
    assert len(resumed.history) == 2 and resumed.background is not None
    with pytest.raises(ValueError, match="encoder must stay fixed"):
        xdepthrecon.train_diffusion(cube, sst, ae, **{**options, "finetune": "all"})
    profiles = cube.depthrecon.sample_profiles(per_tile=100, seed=0)
    out = xdepthrecon.reconstruct(cube, profiles, sst, resumed, members=2, steps=2, tile=16,
                                  overlap=4).compute()
    ocean = cube.thetao.notnull()
    assert bool(out.thetao.notnull().equals(ocean))
    resumed.covered_error_model.variance.fill_(100.0)  # where the training data reached: a std of 10 x sqrt(ratio)
    resumed.error_model.variance.fill_(1e-6)
    resumed.background.covered[:, 16:] = False  # the eastern half filled, as a held-out region's
    out = xdepthrecon.reconstruct(cube, profiles, sst, resumed, members=2, steps=2, tile=16, overlap=4).compute()
    std = out.thetao_std.isel(depth=0).where(ocean.isel(depth=0))
    assert float(std.isel(longitude=slice(0, 16)).min()) > float(std.isel(longitude=slice(16, None)).max())
