"""Shared fixtures: tiny GLORYS-like cubes built in milliseconds, and the real data folder; networks in fp32."""

from __future__ import annotations

import logging
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def fp32_on_every_cpu():
    """The networks' default precision is fp32 in every test and every process the tests start (dask workers
    included: set before any other session fixture), so results do not depend on whether the CPU has bfloat16
    units (where it has, ``fast=None`` means bf16 autocast); tests/test_precision.py checks that choice, and tests
    of the bf16 path ask for it with ``fast=True``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDEPTHRECON_PRECISION", "fp32")
        yield


def glorys_like(
    times: int = 2,
    depths: int = 6,
    lats: int = 8,
    lons: int = 16,
    seed: int = 0,
    lon_start: float = -180.0,
) -> xr.Dataset:
    """A small cube laid out and annotated like a GLORYS12 file, with land that grows with depth."""
    rng = np.random.default_rng(seed)
    depth = np.geomspace(0.494, 1000.0, depths)
    lat = np.linspace(-60.0, 60.0, lats)
    lon = lon_start + (np.arange(lons) + 0.5) * (360.0 / lons)
    surface = 28.0 * np.cos(np.deg2rad(lat))[:, None] * np.ones(lons)
    profile = np.exp(-depth / 300.0)[:, None, None]
    values = 2.0 + (surface[None] - 2.0) * profile + 0.1 * rng.standard_normal((times, depths, lats, lons))
    bottom = rng.uniform(0.0, 1.5 * depth[-1], (lats, lons))
    bottom[: lats // 4, : lons // 4] = -1.0  # a block of land at every depth
    values = np.where(depth[:, None, None] < bottom[None], values, np.nan).astype("float32")
    thetao = xr.DataArray(
        values,
        dims=("time", "depth", "latitude", "longitude"),
        attrs={"standard_name": "sea_water_potential_temperature", "units": "degC", "long_name": "Temperature"},
    )
    return xr.Dataset(
        {"thetao": thetao},
        coords={
            "time": ("time", pd.date_range("2020-01-01", periods=times, freq="D")),
            "depth": ("depth", depth, {"standard_name": "depth", "positive": "down", "units": "m", "axis": "Z"}),
            "latitude": ("latitude", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "longitude": ("longitude", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
    )


def tiny_autoencoder(cube: xr.Dataset, epochs: int = 1):
    """A 3-channel autoencoder with 8-wide layers trained on ``cube`` in 16-cell patches: seconds on a CPU."""
    from dataclasses import replace

    import xdepthrecon
    from xdepthrecon.training.config import AUTOENCODER_TRAINING

    config = xdepthrecon.AutoencoderConfig(latent_channels=3, encoder_channels=(8, 8), decoder_channels=(8, 8))
    return xdepthrecon.train_autoencoder(cube, config=config, training=replace(AUTOENCODER_TRAINING, patch_size=16),
                                         epochs=epochs, progress=False)


def toy_diffusion():
    """An untrained 2-channel latent diffusion model over 4 levels, its 8-wide denoiser's weights drawn so
    that its output depends on its inputs (eval mode)."""
    import torch

    import xdepthrecon
    from xdepthrecon.analysis.background import SeasonalBackground
    from xdepthrecon.analysis.departures import DepartureAnalysis
    from xdepthrecon.diffusion import NoiseSchedule
    from xdepthrecon.models.unet import ConditionalUNet
    from xdepthrecon.stats.covariance import Covariance

    levels = 4
    torch.manual_seed(0)
    ae = xdepthrecon.DepthBandAutoencoder(levels, 2, (8,), (8,), depth=np.arange(levels) * 10.0,
                                          mean=np.full(levels, 10.0), std=np.ones(levels))
    departures = DepartureAnalysis.from_covariances([Covariance("matern32", 500.0, 1.0, 0.01)] * levels)
    analysis = xdepthrecon.Analysis(SeasonalBackground(1, levels, 4, 4), departures)
    statistics = {"latent_mean": np.zeros(2), "latent_std": np.ones(2), "residual_std": np.ones(2),
                  "surface_departure_std": [1.0]}
    unet = ConditionalUNet(2, xdepthrecon.LatentDiffusion.condition_channels(2), dim=8, mults=(1,), attention=False,
                           context=False)
    for parameter in unet.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return xdepthrecon.LatentDiffusion(ae, unet, NoiseSchedule("cosine", 50), analysis, statistics).eval()


def toy_inputs(height: int = 12, width: int = 20):
    """Observations for :func:`toy_diffusion`: two profiles (one of two levels) and a uniform SST of 11 degC."""
    import torch

    from xdepthrecon.analysis.classical import AnalysisInputs

    x = torch.full((1, 4, height, width), torch.nan)
    x[0, :, 3, 5], x[0, :2, 8, 14] = torch.tensor([12.0, 11.0, 10.5, 9.0]), torch.tensor([13.0, 12.5])
    return AnalysisInputs(x, ~torch.isnan(x), torch.full((1, 1, height, width), 11.0),
                          torch.full((1, 4, height, width), 10.0), torch.linspace(-10, 10, height)[None],
                          torch.linspace(-30, 30, width)[None])


def single_threaded(compute):
    """``compute()`` with dask's sync scheduler and torch on one thread, as dask workers run torch
    (dask sets OMP_NUM_THREADS=1): the reference a cluster's result is compared with."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with dask.config.set(scheduler="sync"):
            return compute()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def cube() -> xr.Dataset:
    """A tiny GLORYS-like cube (2 x 6 x 8 x 16) in canonical layout."""
    return glorys_like()


@pytest.fixture
def shared_data() -> Path:
    """The folder of real ocean files beside the repository (skips where it is missing)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is missing")
    return SHARED_DATA


class ComputeCounter:
    """A dask scheduler that counts how often it is asked to compute."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, dsk, keys, **kwargs):
        self.count += 1
        return dask.get(dsk, keys, **kwargs)


@pytest.fixture
def count_computes():
    """Use inside ``with count_computes() as counter:``; ``counter.count`` is the number of computes."""
    from contextlib import contextmanager

    @contextmanager
    def _counting():
        counter = ComputeCounter()
        with dask.config.set(scheduler=counter):
            yield counter

    return _counting


@pytest.fixture(scope="session")
def local_client():
    """A dask.distributed client on a LocalCluster of 2 single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        yield client
