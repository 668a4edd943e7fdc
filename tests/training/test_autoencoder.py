"""train_autoencoder: learns, is reproducible, checkpoints atomically and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon.checkpoint import load_training_state

from tests.conftest import glorys_like

SMALL = {"latent_channels": 3, "encoder_channels": (8, 8), "decoder_channels": (8, 8), "patch_size": 16,
         "batch_size": 4, "progress": False}


@pytest.fixture
def training_cube():
    return glorys_like(times=4, depths=6, lats=32, lons=32, seed=11)


def test_training_learns_and_records_history(training_cube):
    ae = xdepthrecon.train_autoencoder(training_cube, epochs=10, lr=3e-3, val_fraction=0.25, **SMALL)
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
    first = xdepthrecon.train_autoencoder(training_cube, epochs=2, seed=3, **SMALL)
    second = xdepthrecon.train_autoencoder(training_cube, epochs=2, seed=3, **SMALL)
    third = xdepthrecon.train_autoencoder(training_cube, epochs=2, seed=4, **SMALL)
    assert first.identity == second.identity
    assert first.identity != third.identity


def test_checkpoint_resume_matches_uninterrupted_run(training_cube, tmp_path):
    path = tmp_path / "ae.safetensors"
    straight = xdepthrecon.train_autoencoder(training_cube, epochs=3, seed=1, **SMALL)
    xdepthrecon.train_autoencoder(training_cube, epochs=2, seed=1, checkpoint=path, **SMALL)
    assert load_training_state(path)["epoch"] == 2 - 1
    resumed = xdepthrecon.train_autoencoder(training_cube, epochs=3, seed=1, checkpoint=path, **SMALL)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
    loaded = xdepthrecon.load(path)
    assert loaded.identity == resumed.identity


def test_resume_with_other_settings_is_refused(training_cube, tmp_path):
    path = tmp_path / "ae.safetensors"
    xdepthrecon.train_autoencoder(training_cube, epochs=1, checkpoint=path, **SMALL)
    with pytest.raises(ValueError, match="cannot resume.*latent_channels: saved 3, asked 4"):
        xdepthrecon.train_autoencoder(training_cube, epochs=2, checkpoint=path, **{**SMALL, "latent_channels": 4})


def test_trains_on_dask_chunks_without_loading_the_cube(training_cube, monkeypatch):
    chunked = training_cube.chunk({"time": 1, "latitude": 16, "longitude": 16})
    ae = xdepthrecon.train_autoencoder(chunked, epochs=1, **SMALL)
    assert np.isfinite(ae.history[0]["loss"])


def test_nan_never_reaches_the_network(training_cube):
    seen = []
    ae = xdepthrecon.train_autoencoder(training_cube, epochs=1, **SMALL)
    ae.encoder[0].register_forward_hook(lambda module, args, out: seen.append(bool(torch.isnan(args[0]).any())))
    ae.train()
    from xdepthrecon.training.autoencoder import _loss

    loss = _loss(ae, torch.from_numpy(training_cube.thetao.values[:2].astype(np.float32)), True, 1.0, 0.5)
    assert torch.isfinite(loss) and seen == [False]


def test_bfloat16_autocast_trains(cube):
    ae = xdepthrecon.train_autoencoder(glorys_like(times=2, depths=6, lats=16, lons=16), epochs=2, latent_channels=2,
                                       encoder_channels=(4,), decoder_channels=(4,), patch_size=8, progress=False,
                                       fast=True)
    assert all(np.isfinite(h["loss"]) for h in ae.history)
    assert all(p.dtype == torch.float32 for p in ae.parameters())
