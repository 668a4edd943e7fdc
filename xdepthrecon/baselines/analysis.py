"""The classical analysis as a baseline: background + SST regression + OI of the departures, calibrated.

A thin wrapper: it fits :func:`xdepthrecon.fit_analysis` to the training cube (or takes a fitted
:class:`~xdepthrecon.Analysis`) and runs it with :func:`xdepthrecon.reconstruct`, under the signature the
other baselines share, so the OSSE tables score it beside them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdepthrecon.analysis.classical import Analysis, AnalysisConfig
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.io.cube import as_cube
from xdepthrecon.reconstruct import reconstruct
from xdepthrecon.training.analysis import fit_analysis
from xdepthrecon.training.config import ObservationConfig


def classical_analysis(
    profiles: xr.Dataset,
    sst: xr.Dataset | xr.DataArray,
    grid: xr.Dataset | None = None,
    training: xr.Dataset | None = None,
    *,
    window: str = "7D",
    analysis: Analysis | None = None,
    config: AnalysisConfig | None = None,
    observations: ObservationConfig | None = None,
) -> xr.Dataset:
    """The classical analysis of ``profiles`` and ``sst`` on ``grid``: its mean and calibrated error.

    Parameters
    ----------
    profiles, sst
        Observed profiles (:func:`xdepthrecon.read_profiles` form) and surface temperature.
    grid
        Where to analyse (default: ``training``'s grid).
    training
        The cube to fit the analysis to (not needed with ``analysis``).
    window
        Time window for gridding the profiles.
    analysis
        A fitted analysis to run instead of fitting one.
    config, observations
        Settings of the fit; by default the simulated observations' density brackets the profiles' own
        (a third to three times the fraction of ocean columns they observe on the training grid).
    """
    if analysis is None:
        if training is None:
            raise ValueError("classical_analysis fits the analysis to a training cube: pass training=, or a fitted "
                             "analysis=")
        observations = observations or ObservationConfig(density=_bracket(profiles, training, window),
                                                         window=window)
        analysis = fit_analysis(training, sst, config=config, observations=observations, progress=False)
    target = grid if grid is not None else training
    if target is None:
        raise ValueError("pass the grid to analyse on (grid=), or the training cube whose grid to use")
    return reconstruct(target, profiles, sst, analysis, window=window)


def _bracket(profiles: xr.Dataset, training: xr.Dataset, window: str) -> tuple[float, float]:
    """A third to three times the fraction of ocean columns ``profiles`` observe on ``training``'s grid."""
    cube = as_cube(training)
    observed = grid_profiles(profiles, like=cube, window=window).x_mask.any("depth")
    ocean = cube.thetao.notnull().any("depth")
    fraction = float(observed.where(ocean).sum() / max(int(ocean.sum()), 1))
    fraction = float(np.clip(fraction, 1e-4, 1.0))
    return fraction / 3.0, min(3.0 * fraction, 1.0)
