"""Progress after training: one bar names each phase of fitting and calibrating the analysis and of the
network's calibration; ``progress=False`` prints nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

import xdepthrecon
from xdepthrecon import AnalysisConfig, DiffusionConfig, ObservationConfig
from xdepthrecon.training.config import DIFFUSION_TRAINING

from tests.conftest import glorys_like, tiny_autoencoder

SETTINGS = AnalysisConfig(folds=2, batches=2, neighbours=16)
TRAINING = replace(DIFFUSION_TRAINING, patch_size=16, batch_size=4, val_fraction=0.25)
OBSERVATIONS = ObservationConfig(density=(0.05, 0.2))
ANALYSIS_PHASES = ("background fit", "backgrounds held out in space", "backgrounds held out in time",
                   "covariance fit", "covariance fit (no SST)", "calibration (space)", "calibration (time)")
NETWORK_PHASES = ("backgrounds held out in space", "backgrounds held out in time", "network calibration (space)",
                  "network calibration (time)")


@pytest.fixture(scope="module")
def setting():
    cube = glorys_like(times=3, depths=5, lats=24, lons=32, seed=2)
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    return cube, sst


def _fit(setting, progress):
    cube, sst = setting
    return xdepthrecon.fit_analysis(cube, sst, config=SETTINGS, observations=OBSERVATIONS, training=TRAINING,
                                    device="cpu", progress=progress)


def test_fitting_the_analysis_names_each_phase_and_is_silent_without_progress(setting, capfd):
    _fit(setting, progress=True)
    shown = capfd.readouterr().err
    for phase in ANALYSIS_PHASES:
        assert phase in shown
    assert f"{2 * SETTINGS.folds + 5}/{2 * SETTINGS.folds + 5}" in shown  # every step counted
    _fit(setting, progress=False)
    assert capfd.readouterr() == ("", "")


def test_the_network_calibration_names_each_phase_and_is_silent_without_progress(setting, capfd):
    cube, sst = setting
    ae = tiny_autoencoder(cube)
    analysis = _fit(setting, progress=False)
    capfd.readouterr()

    def train(progress):
        return xdepthrecon.train_diffusion(cube, sst, ae, config=DiffusionConfig(dim=8, diffusion_steps=100),
                                           analysis=analysis, observations=OBSERVATIONS, training=TRAINING,
                                           epochs=1, device="cpu", progress=progress)

    train(progress=True)
    shown = capfd.readouterr().err
    for phase in NETWORK_PHASES:  # a given analysis: its backgrounds are fitted anew for the calibration
        assert phase in shown
    steps = 2 * SETTINGS.folds + 2  # the backgrounds' fits; one pass over either held-out set
    assert f"{steps}/{steps}" in shown
    train(progress=False)
    assert capfd.readouterr() == ("", "")
