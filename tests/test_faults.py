"""Faults: a killed training run resumes to the same weights, corrupt checkpoints are refused and left as they were,
an interrupted zarr write resumes without recomputing what was written, a killed dask worker changes nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon import AutoencoderConfig, TrainingConfig
from xdepthrecon.checkpoint import load_training_state

from tests.conftest import glorys_like

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
    run = subprocess.Popen([sys.executable, "-c", child, str(path)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stderr=subprocess.PIPE)
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
