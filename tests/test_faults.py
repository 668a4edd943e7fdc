"""Faults: a killed training run resumes to the same weights, corrupt checkpoints are refused and left as they were,
an interrupted zarr write resumes without recomputing what was written, a killed dask worker changes nothing."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import dask
import numpy as np
import pytest
import torch
import xarray as xr
from dask.callbacks import Callback
from dask.utils import key_split

import xdepthrecon
from xdepthrecon import AutoencoderConfig, DiffusionConfig, SamplingOptions, TrainingConfig
from xdepthrecon.checkpoint import load_training_state
from xdepthrecon.training.config import DIFFUSION_TRAINING

from tests.conftest import glorys_like, single_threaded

ROOT = Path(__file__).resolve().parents[1]
TINY = AutoencoderConfig(latent_channels=2, encoder_channels=(4,), decoder_channels=(4,), linear_path=False)
#: About half a second per epoch on one CPU thread, so that a kill lands inside an epoch.
SLOW = TrainingConfig(patch_size=16, batch_size=2, seed=1)
EPOCHS = 5
CUBE = "glorys_like(times=8, depths=6, lats=64, lons=128, seed=11)"
TRAIN = ("xdepthrecon.train_autoencoder(cube, config=TINY, training=SLOW, epochs=EPOCHS, checkpoint=path, "
         "progress=False)")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a training run killed with SIGKILL resumes to the weights of an uninterrupted run -------------------------


def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    path = tmp_path / "ae.safetensors"
    child = textwrap.dedent(f"""
        import sys, torch, xdepthrecon
        from tests.conftest import glorys_like
        from tests.test_faults import EPOCHS, SLOW, TINY
        torch.set_num_threads(1)
        cube, path = {CUBE}, sys.argv[1]
        {TRAIN}
    """)
    run = subprocess.Popen([sys.executable, "-c", child, str(path)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not path.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"no checkpoint was written: {run.stderr.read().decode() if run.poll() is not None else ''}"
    time.sleep(0.25)  # about half of the second epoch
    run.send_signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    interrupted_at = load_training_state(path)["epoch"]
    assert interrupted_at < EPOCHS - 1  # killed before the end: there is something left to resume

    threads = torch.get_num_threads()
    try:  # the child trained on one thread; so do these runs, so that all agree to the bit
        torch.set_num_threads(1)
        cube = glorys_like(times=8, depths=6, lats=64, lons=128, seed=11)
        resumed = xdepthrecon.train_autoencoder(cube, config=TINY, training=SLOW, epochs=EPOCHS, checkpoint=path,
                                                progress=False)
        straight = xdepthrecon.train_autoencoder(cube, config=TINY, training=SLOW, epochs=EPOCHS, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert [h["epoch"] for h in resumed.history] == list(range(EPOCHS))
    assert resumed.history[:interrupted_at + 1] == load_training_state(path)["history"][:interrupted_at + 1]
    expected = straight.state_dict()
    assert resumed.state_dict().keys() == expected.keys()
    for name, value in resumed.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-6, msg=name)
    assert xdepthrecon.load(path).identity == resumed.identity


# --- corrupt checkpoints are refused by name and left untouched ---------------------------------------------------


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A checkpoint with training state after one epoch of a small run, and the cube it was trained on."""
    cube = glorys_like(times=2, depths=6, lats=32, lons=32, seed=3)
    path = tmp_path_factory.mktemp("run") / "ae.safetensors"
    xdepthrecon.train_autoencoder(cube, config=TINY, training=replace(SLOW, batch_size=4), epochs=1,
                                  checkpoint=path, progress=False)
    return cube, path.read_bytes()


def _truncated(data: bytes, where: float) -> bytes:
    return data[:int(len(data) * where)]


def _flipped(data: bytes, where: float) -> bytes:
    changed = bytearray(data)
    changed[min(int(len(data) * where), len(data) - 1)] ^= 0x10
    return bytes(changed)


@pytest.mark.parametrize(
    ("damage", "where", "problem"),
    [
        (_truncated, 0.0, "truncated or corrupt"),
        (_truncated, 0.5, "truncated or corrupt"),
        (_truncated, 0.999, "truncated or corrupt"),
        (_flipped, 0.0, "truncated or corrupt"),  # the header's length
        (_flipped, 0.01, "corrupt"),  # inside the JSON header
        (_flipped, 0.5, "does not match the sha256"),  # the weights or the optimizer state
        (_flipped, 1.0, "does not match the sha256"),  # the last stored byte
    ],
    ids=["empty", "half", "last-bytes", "flip-length", "flip-header", "flip-middle", "flip-end"],
)
def test_a_damaged_checkpoint_is_refused_by_load_and_by_resume_and_left_as_it_was(saved_run, tmp_path, damage,
                                                                                  where, problem):
    cube, data = saved_run
    path = tmp_path / "ae.safetensors"
    path.write_bytes(damage(data, where))
    before = _sha256(path)
    with pytest.raises(ValueError, match=f"{path}.*{problem}"):
        xdepthrecon.load(path)
    with pytest.raises(ValueError, match=f"{path}.*{problem}"):
        xdepthrecon.train_autoencoder(cube, config=TINY, training=replace(SLOW, batch_size=4), epochs=2,
                                      checkpoint=path, progress=False)
    assert _sha256(path) == before
    assert os.listdir(tmp_path) == ["ae.safetensors"]


# --- reconstruction: a zarr write resumed after an interruption, a dask worker killed ------------------------------

SAMPLING = SamplingOptions(members=2, steps=3, tile=16, overlap=4)


@pytest.fixture(scope="module")
def setting():
    """A barely trained latent diffusion model, a cube of 6 time steps, its SST and profiles sampled from it."""
    cube = glorys_like(times=6, depths=6, lats=24, lons=32, seed=5)
    sst = cube.thetao.isel(depth=0).rename("analysed_sst").to_dataset()
    sst.analysed_sst.attrs = {"units": "degC"}
    ae = xdepthrecon.train_autoencoder(cube, config=TINY, training=replace(SLOW, batch_size=4), epochs=1,
                                       progress=False)
    model = xdepthrecon.train_diffusion(cube, sst, ae, config=DiffusionConfig(dim=8, mults=(1, 2), diffusion_steps=50),
                                        training=replace(DIFFUSION_TRAINING, patch_size=16, batch_size=4), epochs=1,
                                        progress=False)
    return cube, sst, model, cube.depthrecon.sample_profiles(per_tile=400, seed=0)


class _EstimatorTasks(Callback):
    """Counts the per-time-step reconstruction tasks the local scheduler starts; raises at the ``fail_at``-th."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.started, self.fail_at = 0, fail_at

    def _pretask(self, key, dsk, state) -> None:
        if "run_estimator" in key_split(key):  # the task of one time step (fused with its input)
            self.started += 1
            if self.started == self.fail_at:
                raise KeyboardInterrupt("interrupted during a time step")


def _write_resumable(result: xr.Dataset, store: Path) -> None:
    """The region-write recipe of docs/performance.md ("Resumable writes")."""
    if not store.exists():
        result.assign(written=("time", np.zeros(result.sizes["time"], bool))).to_zarr(store, compute=False)
    written = xr.open_zarr(store).written.values
    for t in np.flatnonzero(~written):
        region = {"time": slice(t, t + 1)}
        result.isel(region).drop_vars(["depth", "latitude", "longitude"]).to_zarr(store, region=region)
        xr.Dataset({"written": ("time", [True])}).to_zarr(store, region=region)


def test_an_interrupted_zarr_write_resumes_without_recomputing_the_written_time_steps(setting, tmp_path):
    cube, sst, model, profiles = setting
    result = xdepthrecon.reconstruct(cube, profiles, sst, model, seed=1, options=SAMPLING)
    store = tmp_path / "reconstruction.zarr"
    with dask.config.set(scheduler="sync"), _EstimatorTasks(fail_at=3) as first:
        with pytest.raises(KeyboardInterrupt):
            _write_resumable(result, store)
    assert first.started == 3 and xr.open_zarr(store).written.values.tolist() == [True] * 2 + [False] * 4
    with dask.config.set(scheduler="sync"), _EstimatorTasks() as second:
        _write_resumable(xdepthrecon.reconstruct(cube, profiles, sst, model, seed=1, options=SAMPLING), store)
    assert second.started == 4  # only the time steps not written before
    with dask.config.set(scheduler="sync"), _EstimatorTasks() as straight:
        expected = result.compute()
    assert straight.started == 6
    written = xr.open_zarr(store).compute()
    assert written.written.all()
    xr.testing.assert_equal(written[list(expected.data_vars)], expected)


def test_a_dask_worker_killed_during_reconstruct_is_replaced_and_the_result_is_the_same(setting):
    distributed = pytest.importorskip("distributed")
    cube, sst, model, profiles = setting
    expected = single_threaded(
        lambda: xdepthrecon.reconstruct(cube, profiles, sst, model, seed=2, options=SAMPLING).compute())
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cluster, distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        future = client.compute(xdepthrecon.reconstruct(cube, profiles, sst, model, seed=2, options=SAMPLING))
        busy: list[str] = []
        deadline = time.monotonic() + 60
        while not busy and time.monotonic() < deadline:
            busy = [worker for worker, keys in client.processing().items()
                    if any("run_estimator" in key_split(key) for key in keys)]
            time.sleep(0.01)
        assert busy and not future.done()
        os.kill(pids[busy[0]], signal.SIGKILL)  # in the middle of a time step
        result = future.result(timeout=120)
        assert pids[busy[0]] not in client.run(os.getpid).values()  # the nanny started a new worker
    xr.testing.assert_equal(result, expected)
