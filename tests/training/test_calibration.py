"""Calibration on windows without ocean warns that the stated error is not calibrated, instead of going silent."""

from __future__ import annotations

import pytest
import torch

from xdepthrecon.training.batches import PatchDataset
from xdepthrecon.training.calibration import calibrate

from tests.conftest import glorys_like


def _estimate(batch, random):
    interior = batch["y"]
    return torch.zeros_like(interior), torch.ones_like(interior)


def test_calibration_on_land_only_windows_warns_and_returns_no_model():
    cube = glorys_like(times=2, depths=3, lats=16, lons=16, seed=0)
    land = PatchDataset({"y": cube.thetao * float("nan")}, patch_size=8)
    with pytest.warns(UserWarning, match="no patch to calibrate on.*not calibrated"):
        assert calibrate(_estimate, land, 4, device=torch.device("cpu"), seed=0, batches=2) is None
    ocean = PatchDataset({"y": cube.thetao}, patch_size=8, max_land_fraction=1.0)
    model = calibrate(_estimate, ocean, 4, device=torch.device("cpu"), seed=0, batches=2)
    assert model is not None and torch.all(torch.isfinite(model.ratio))
