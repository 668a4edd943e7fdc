"""The classical analysis as a baseline: fitted to a training cube, scored beside climatology on new times."""

from __future__ import annotations

import numpy as np
import pytest

import xdepthrecon
from xdepthrecon.baselines import classical_analysis, climatology

from tests.conftest import glorys_like


@pytest.fixture(scope="module")
def split():
    """Six time steps, each with a warm or cold blob (2 degC at the surface, fading with depth) somewhere."""
    cube = glorys_like(times=6, depths=5, lats=32, lons=40, seed=7)
    rng = np.random.default_rng(3)
    lat, lon = np.meshgrid(cube.latitude.values, cube.longitude.values, indexing="ij")
    blobs = np.stack([rng.choice([-2.0, 2.0]) * np.exp(-((lat - rng.uniform(-40, 40)) ** 2
                                                          + (lon - rng.uniform(-150, 150)) ** 2) / (2 * 25.0**2))
                      for _ in range(6)])
    fading = np.exp(-cube.depth.values / 300.0)
    cube["thetao"] = cube.thetao + blobs[:, None] * fading[None, :, None, None]
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    profiles = cube.depthrecon.sample_profiles(per_tile=600, seed=2)
    return cube.isel(time=slice(0, 4)), cube.isel(time=slice(4, 6)), sst, profiles


def test_fitted_on_training_times_it_beats_climatology_at_new_times(split):
    training, test, sst, profiles = split
    analysed = classical_analysis(profiles, sst, grid=test, training=training)
    seasonal = climatology(profiles, sst, grid=test, training=training)

    def rmse(ds):
        return float(np.sqrt(np.nanmean((ds.thetao.values - test.thetao.values) ** 2)))

    assert rmse(analysed) < 0.8 * rmse(seasonal)
    ocean = test.thetao.notnull().values
    assert np.all(analysed.thetao_std.values[ocean] > 0) and np.isnan(analysed.thetao.values[~ocean]).all()


def test_a_fitted_analysis_runs_without_refitting_and_bad_calls_name_the_fix(split):
    training, test, sst, profiles = split
    analysis = xdepthrecon.fit_analysis(training, sst, observations=xdepthrecon.ObservationConfig(density=(0.1, 0.3)),
                                        progress=False)
    out = classical_analysis(profiles, sst, grid=test, analysis=analysis)
    again = xdepthrecon.reconstruct(test, profiles, sst, analysis).compute()
    np.testing.assert_array_equal(out.thetao.values, again.thetao.values)
    with pytest.raises(ValueError, match="pass training="):
        classical_analysis(profiles, sst, grid=test)
