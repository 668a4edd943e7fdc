"""One snapshot (a single time step) trains with the default validation fraction: validation is held out in
space, as whole spatial blocks, and the analysis's backgrounds fall back to the in-sample fit over time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon import AnalysisConfig, DiffusionConfig, ObservationConfig
from xdepthrecon.analysis.background import SeasonalBackground, cross_validated_background
from xdepthrecon.training.batches import PatchDataset
from xdepthrecon.training.config import DIFFUSION_TRAINING

from tests.conftest import glorys_like, tiny_autoencoder


def _covered(windows, shape):
    """How many windows cover each (time, row, column) cell."""
    count = np.zeros(shape, dtype=int)
    for w in windows:
        count[w.time, w.latitude, w.longitude] += 1
    return count


def _snapshot(lats=40, lons=72, depths=10, seed=5):
    cube = glorys_like(times=1, depths=depths, lats=lats, lons=lons, seed=seed)
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    return cube, sst


def test_one_snapshot_is_cut_into_whole_blocks_so_a_fraction_can_be_held_out():
    cube, _ = _snapshot(lats=90, lons=180)
    dataset = PatchDataset({"y": cube.thetao}, patch_size=32)
    assert len(dataset.all_windows()) == 1
    train, val = dataset.split(0.1)
    assert len(val) == 1 and len(train) == 9  # 2 x 5 blocks of at least a patch; one of ten held out
    for w in train + val:
        assert w.rows[1] - w.rows[0] >= 32 and w.columns[1] - w.columns[0] >= 32
    # the blocks tile the grid: every cell in exactly one, so no training patch reaches a held-out block
    np.testing.assert_array_equal(_covered(train + val, (1, 90, 180)), 1)


def test_a_snapshot_with_room_for_two_blocks_holds_one_out_and_one_block_is_cut_in_half_patches():
    cube, _ = _snapshot(lats=40, lons=72)
    train, val = PatchDataset({"y": cube.thetao}, patch_size=32).split(0.1)
    assert len(train) == 1 and len(val) == 1
    np.testing.assert_array_equal(_covered(train + val, (1, 40, 72)), 1)
    square = {"y": cube.thetao.isel(longitude=slice(0, 40))}  # room for one patch: blocks of half a patch
    train, val = PatchDataset(square, patch_size=32).split(0.1)
    assert len(val) == 1 and len(train) >= 3
    assert min(b - a for w in train + val for a, b in (w.rows, w.columns)) >= 16
    np.testing.assert_array_equal(_covered(train + val, (1, 40, 40)), 1)
    with pytest.raises(ValueError, match="leaves no training windows out of .*smaller patch_size"):
        PatchDataset(square, patch_size=32).split(0.9)


def test_blocks_aligned_with_chunks_never_overlap():
    cube = glorys_like(times=2, depths=3, lats=40, lons=48).chunk({"latitude": 18, "longitude": 24})
    windows = PatchDataset({"y": cube.thetao}, patch_size=8).all_windows()
    # the last 4 latitude rows, shorter than a patch, join the block before them instead of overlapping it
    assert sorted({w.rows for w in windows}) == [(0, 18), (18, 40)]
    np.testing.assert_array_equal(_covered(windows, (2, 40, 48)), 1)


def test_the_autoencoder_trains_on_one_snapshot_with_the_default_settings():
    cube, _ = _snapshot()
    ae = xdepthrecon.train_autoencoder(cube, epochs=1, progress=False)
    assert len(ae.history) == 1 and np.isfinite(ae.history[0]["val_loss"])


def test_cross_validation_over_time_of_one_snapshot_falls_back_to_the_in_sample_fit():
    cube, sst = _snapshot(lats=16, lons=24, depths=4)
    field = cube.thetao.rename(depth="channel")
    crossed = cross_validated_background(field, sst.sst, folds=4, over="time")
    fitted = SeasonalBackground.fit(field, sst.sst).at(cube.time.values, cube.latitude.values,
                                                       cube.longitude.values, sst.sst.values)
    np.testing.assert_allclose(crossed.values, fitted.numpy(), rtol=1e-6)
    ocean = np.isfinite(field.values)
    assert np.abs(crossed.values[ocean] - field.values[ocean]).max() < 1e-3  # the one time step's own values


def test_the_diffusion_model_trains_and_calibrates_on_one_snapshot():
    cube, sst = _snapshot(depths=6)
    ae = tiny_autoencoder(cube)
    model = xdepthrecon.train_diffusion(cube, sst, ae, config=DiffusionConfig(dim=8, diffusion_steps=100),
                                        analysis=AnalysisConfig(folds=2, batches=2, neighbours=16),
                                        observations=ObservationConfig(density=(0.05, 0.2)),
                                        training=replace(DIFFUSION_TRAINING, batch_size=4), epochs=1, progress=False)
    assert np.isfinite(model.history[0]["val_loss"])
    for errors in (model.error_model, model.covered_error_model, model.analysis.error_model,
                   model.analysis.covered_error_model):
        assert errors is not None and torch.all(torch.isfinite(errors.ratio) & (errors.ratio > 0))
    assert np.all(np.isfinite(model.analysis.departures.length_scale.numpy()))
