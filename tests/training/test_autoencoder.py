"""train_autoencoder: learns, is reproducible, checkpoints atomically and resumes only with the same settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon import AutoencoderConfig, TrainingConfig
from xdepthrecon.checkpoint import load_training_state
from xdepthrecon.training.autoencoder import autoencoder_loss

from tests.conftest import glorys_like

SMALL = AutoencoderConfig(latent_channels=3, encoder_channels=(8, 8), decoder_channels=(8, 8), linear_path=False)
FAST = TrainingConfig(patch_size=16, batch_size=4, lr=1e-4, weight_decay=0.0, ema=None)


def train(cube, config=SMALL, training=FAST, **kwargs):
    return xdepthrecon.train_autoencoder(cube, config=config, training=training, progress=False, **kwargs)


@pytest.fixture
def training_cube():
    return glorys_like(times=4, depths=6, lats=32, lons=32, seed=11)


def test_training_learns_and_records_history(training_cube):
    ae = train(training_cube, training=replace(FAST, lr=3e-3, val_fraction=0.25), epochs=10)
    assert [h["epoch"] for h in ae.history] == list(range(10))
    assert ae.history[-1]["loss"] < 0.5 * ae.history[0]["loss"]
    assert np.isfinite(ae.history[-1]["val_loss"]) and ae.history[-1]["samples_per_s"] > 0
    np.testing.assert_allclose(ae.depth, training_cube.depth.values)
    np.testing.assert_allclose(ae.mean.numpy(), np.nanmean(training_cube.thetao.values, axis=(0, 2, 3)), rtol=1e-4)
    back = training_cube.depthrecon.encode(ae).depthrecon.decode(ae)
    naive = np.nanmean(training_cube.thetao.values, axis=(0, 2, 3))[None, :, None, None]
    error = np.nanmean(np.abs(back.thetao.values - training_cube.thetao.values))
    assert error < np.nanmean(np.abs(naive - training_cube.thetao.values))


def test_seeded_training_is_reproducible_on_cpu(training_cube):
    first = train(training_cube, training=replace(FAST, seed=3), epochs=2)
    second = train(training_cube, training=replace(FAST, seed=3), epochs=2)
    third = train(training_cube, training=replace(FAST, seed=4), epochs=2)
    assert first.identity == second.identity
    assert first.identity != third.identity


def test_checkpoint_resume_matches_uninterrupted_run(training_cube, tmp_path):
    path = tmp_path / "ae.safetensors"
    seeded = replace(FAST, seed=1)
    straight = train(training_cube, training=seeded, epochs=3)
    train(training_cube, training=seeded, epochs=2, checkpoint=path)
    assert load_training_state(path)["epoch"] == 2 - 1
    resumed = train(training_cube, training=seeded, epochs=3, checkpoint=path)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
    loaded = xdepthrecon.load(path)
    assert loaded.identity == resumed.identity


def test_resume_with_other_settings_is_refused_and_the_checkpoint_kept(training_cube, tmp_path):
    path = tmp_path / "ae.safetensors"
    train(training_cube, epochs=1, checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cannot resume.*model.latent_channels: saved 3, asked 4"):
        train(training_cube, replace(SMALL, latent_channels=4), epochs=2, checkpoint=path)
    with pytest.raises(ValueError, match=r"cannot resume.*training.lr: saved 0.0001, asked 0.01.*other checkpoint"):
        train(training_cube, training=replace(FAST, lr=1e-2), epochs=2, checkpoint=path)
    assert path.read_bytes() == before
    train(training_cube, epochs=2, checkpoint=path)  # more epochs with the same settings: resumes
    assert load_training_state(path)["epoch"] == 1


def test_trains_on_dask_chunks_without_loading_the_cube(training_cube, monkeypatch):
    chunked = training_cube.chunk({"time": 1, "latitude": 16, "longitude": 16})
    ae = train(chunked, epochs=1)
    assert np.isfinite(ae.history[0]["loss"])


def test_nan_never_reaches_the_network(training_cube):
    seen = []
    ae = train(training_cube, epochs=1)
    ae.encoder[0].register_forward_hook(lambda module, args, out: seen.append(bool(torch.isnan(args[0]).any())))
    ae.train()
    loss = autoencoder_loss(ae, torch.from_numpy(training_cube.thetao.values[:2].astype(np.float32)), SMALL)
    assert torch.isfinite(loss) and seen == [False]


def test_bfloat16_autocast_trains(cube):
    ae = train(glorys_like(times=2, depths=6, lats=16, lons=16),
               AutoencoderConfig(latent_channels=2, encoder_channels=(4,), decoder_channels=(4,)),
               replace(FAST, patch_size=8, fast=True), epochs=2)
    assert all(np.isfinite(h["loss"]) for h in ae.history)
    assert all(p.dtype == torch.float32 for p in ae.parameters())


def test_the_default_recipe_starts_from_the_eofs_and_trains_on_one_call(training_cube):
    with pytest.raises(ValueError, match="latent_channels=8 is more than the cube's 6 depth levels"):
        xdepthrecon.train_autoencoder(training_cube, epochs=1, progress=False)
    ae = xdepthrecon.train_autoencoder(glorys_like(times=3, depths=10, lats=32, lons=32), epochs=1, progress=False)
    assert ae.config["latent_channels"] == AutoencoderConfig().latent_channels and ae.config["linear_path"]
    assert len(ae.history) == 1 and np.isfinite(ae.history[0]["val_loss"])


def test_bad_settings_name_the_problem():
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainingConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="ema must be in"):
        TrainingConfig(ema=1.5)


def test_train_autoencoder_with_linear_path_starts_from_the_eofs(tmp_path):
    from dataclasses import replace

    from xdepthrecon.stats.pca import PCACompressor

    cube = glorys_like(times=4, depths=6, lats=32, lons=32, seed=11)
    config = xdepthrecon.AutoencoderConfig(latent_channels=3, encoder_channels=(8,), decoder_channels=(8,),
                                           linear_path=True)
    training = xdepthrecon.TrainingConfig(patch_size=16, batch_size=4, lr=1e-2, lr_schedule="cosine", ema=None)
    start = xdepthrecon.train_autoencoder(cube, config=config, training=training, epochs=0, progress=False)
    assert start.linear_path and start.history == []
    pca = PCACompressor.fit(cube, 3, mean=start.mean.numpy(), std=start.std.numpy())
    weight = start.decode_linear.weight[:, :, 0, 0].detach().numpy()
    np.testing.assert_allclose(np.abs(weight.T @ pca.components), np.eye(3), atol=1e-5)
    path = tmp_path / "ae.safetensors"
    trained = xdepthrecon.train_autoencoder(cube, config=config, training=training, epochs=2, checkpoint=path,
                                            progress=False)
    assert [h["epoch"] for h in trained.history] == [0, 1]
    assert not torch.equal(trained.to_output.weight, start.to_output.weight)
    for name in ("encode_linear", "decode_linear"):  # the EOFs stay fixed; the network learns the correction
        torch.testing.assert_close(getattr(trained, name).weight, getattr(start, name).weight, rtol=0, atol=0)
    with pytest.raises(ValueError, match="model.linear_path: saved True, asked False"):
        xdepthrecon.train_autoencoder(cube, config=replace(config, linear_path=False), training=training, epochs=3,
                                      checkpoint=path, progress=False)
    with pytest.raises(ValueError, match=r"lr_schedule must be one of \('constant', 'cosine'\), got 'linear'"):
        replace(training, lr_schedule="linear")
