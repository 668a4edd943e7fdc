"""Tests of xdepthrecon.evaluation.ceiling: the autoencoder's round trip beside EOFs, per depth band."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from tests.conftest import glorys_like
from xdepthrecon.evaluation.ceiling import compression_ceiling
from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.stats.pca import PCACompressor


def _eof_autoencoder(cube: xr.Dataset, latent: int) -> DepthBandAutoencoder:
    """An autoencoder whose network is silent: exactly the EOFs of ``cube``."""
    torch.manual_seed(0)
    thetao = cube.thetao
    dims = ("time", "latitude", "longitude")
    ae = DepthBandAutoencoder(thetao.sizes["depth"], latent, (4,), (4,), linear_path=True,
                              depth=thetao.depth.values, mean=thetao.mean(dims).values,
                              std=thetao.std(dims).values)
    return ae.init_linear_path(PCACompressor.fit(thetao, latent, mean=ae.mean, std=ae.std)).eval()


def test_a_silent_network_matches_the_eofs_of_the_cube_on_complete_columns():
    cube = glorys_like(times=3, depths=6, lats=16, lons=16, seed=1)
    ae = _eof_autoencoder(cube, 3)
    ceiling = compression_ceiling(cube, ae, mask=cube.thetao.notnull().all("depth"))
    np.testing.assert_allclose(ceiling.ratio.values, 1.0, atol=1e-4)
    assert (ceiling.eof_rmse > 0).all() and (ceiling.points > 0).all()


def test_rmse_per_band_agrees_with_an_independent_computation():
    cube = glorys_like(times=2, depths=6, lats=16, lons=16, seed=2)
    ae = _eof_autoencoder(cube, 2)
    with torch.no_grad():
        ae.to_output.bias.fill_(0.1)  # the network now shifts every level by 0.1 normalised units
    truth = cube.thetao.values
    with torch.no_grad():
        rebuilt = ae(torch.as_tensor(truth)).numpy()
    eofs = PCACompressor.fit(cube, 2)
    ceiling = compression_ceiling(cube, ae, eofs=eofs, bands=[(0.0, 100.0), (100.0, 1000.0)])
    depth = cube.depth.values
    eof_rebuilt = eofs.decode(eofs.encode(cube)).thetao.values
    for label, levels in (("0-100 m", depth < 100.0), ("100-1000 m", depth >= 100.0)):
        error = (rebuilt - truth)[:, levels]
        valid = ~np.isnan(error) & ~np.isnan(eof_rebuilt[:, levels])
        expected = np.sqrt(np.mean(error[valid] ** 2))
        assert ceiling.autoencoder_rmse.sel(band=label) == pytest.approx(expected, rel=1e-4)
        assert int(ceiling.points.sel(band=label)) == valid.sum()
    assert (ceiling.ratio > 1.0).all()


def test_mask_limits_the_scored_region():
    cube = glorys_like(times=2, depths=6, lats=16, lons=16, seed=3)
    ae = _eof_autoencoder(cube, 2)
    east = cube.longitude > 0
    whole, part = compression_ceiling(cube, ae), compression_ceiling(cube, ae, mask=east)
    assert (part.points < whole.points).all() and (part.points > 0).all()


def test_eofs_of_another_size_are_refused():
    cube = glorys_like(times=2, depths=6, lats=16, lons=16)
    with pytest.raises(ValueError, match="same size"):
        compression_ceiling(cube, _eof_autoencoder(cube, 2), eofs=PCACompressor.fit(cube, 3))


def test_other_levels_are_refused():
    cube = glorys_like(times=2, depths=6, lats=16, lons=16)
    ae = _eof_autoencoder(cube, 2)
    with pytest.raises(ValueError):
        compression_ceiling(cube.isel(depth=slice(0, 5)), ae)
