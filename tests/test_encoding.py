"""encode/decode through the accessor: shapes, coords, NaN pattern, chunk independence, laziness."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import torch
import xarray as xr

import xdepthrecon
from xdepthrecon import _precision
from xdepthrecon import DepthBandAutoencoder

from tests.conftest import glorys_like, single_threaded


@pytest.fixture
def small_ae(cube):
    torch.manual_seed(0)
    ae = DepthBandAutoencoder(cube.sizes["depth"], latent_channels=3, encoder_channels=(8, 8, 8),
                              decoder_channels=(8, 8, 8), depth=cube.depth.values)
    return ae.fit_normalization(cube.thetao.values)


def test_round_trip_keeps_shapes_coords_and_nan_pattern(cube, small_ae):
    latents = cube.depthrecon.encode(small_ae)
    assert latents.latent.dims == ("time", "channel", "latitude", "longitude")
    assert latents.sizes["channel"] == 3
    assert latents.attrs["autoencoder_identity"] == small_ae.identity
    assert "units" in latents.latent.attrs and latents.latent.attrs["units"] == "1"
    land = np.isnan(cube.thetao.values).all(axis=1)
    np.testing.assert_array_equal(np.isnan(latents.latent.values).any(axis=1), land)
    back = latents.depthrecon.decode(small_ae)
    assert back.thetao.dims == cube.thetao.dims
    np.testing.assert_array_equal(back.time.values, cube.time.values)
    for name in ("depth", "latitude", "longitude"):
        np.testing.assert_allclose(back[name].values, cube[name].values)
    np.testing.assert_array_equal(np.isnan(back.thetao.values), np.isnan(cube.thetao.values))
    assert back.thetao.attrs["units"] == "degC" and "xdepthrecon.decode()" in back.attrs["history"]


def test_chunked_equals_unchunked_and_stays_lazy(small_ae, count_computes):
    cube = glorys_like(times=3, lats=24, lons=40, seed=5)
    eager = xdepthrecon.encode(cube, small_ae, tile=8)
    with count_computes() as counter:
        lazy = xdepthrecon.encode(cube.chunk({"time": 1, "latitude": 7, "longitude": 9}), small_ae, tile=16)
        decoded = xdepthrecon.decode(lazy, small_ae)
        assert counter.count == 0
    assert lazy.latent.chunks is not None and decoded.thetao.chunks is not None
    xr.testing.assert_allclose(lazy.latent.compute(), eager.latent, atol=1e-5)
    xr.testing.assert_allclose(decoded.thetao.compute(), xdepthrecon.decode(eager, small_ae).thetao, atol=1e-4)


def test_global_grid_has_no_seam_at_the_dateline(small_ae):
    cube = glorys_like(times=1, lats=12, lons=36, seed=2)
    rolled = cube.roll(longitude=9, roll_coords=False).assign_coords(longitude=cube.longitude)
    out = xdepthrecon.encode(cube, small_ae).latent.values
    out_rolled = xdepthrecon.encode(rolled, small_ae).latent.values
    np.testing.assert_allclose(np.roll(out, 9, axis=-1), out_rolled, atol=1e-5)


def test_wrong_levels_are_refused(cube, small_ae):
    shallower = cube.assign_coords(depth=cube.depth.values * 1.5)
    with pytest.raises(ValueError, match=r"depth levels differ.*interp\(depth=ae.depth\)"):
        shallower.depthrecon.encode(small_ae)
    with pytest.raises(ValueError, match="trained on 6"):
        cube.isel(depth=slice(0, 4)).depthrecon.encode(small_ae)


def test_decoding_with_another_autoencoder_is_refused(cube, small_ae):
    latents = cube.depthrecon.encode(small_ae)
    other = DepthBandAutoencoder(cube.sizes["depth"], latent_channels=3, encoder_channels=(8, 8, 8),
                                 decoder_channels=(8, 8, 8), depth=cube.depth.values)
    with pytest.raises(ValueError, match="made by autoencoder .* decode with the autoencoder that encoded them"):
        latents.depthrecon.decode(other)


def test_fast_path_is_close_to_fp32(cube, small_ae):
    exact = xdepthrecon.decode(xdepthrecon.encode(cube, small_ae, fast=False), small_ae, fast=False).thetao
    fast = xdepthrecon.decode(xdepthrecon.encode(cube, small_ae, fast=True), small_ae, fast=True).thetao
    error = float(np.nanmax(np.abs(fast.values - exact.values)))
    assert 0 < error < 0.5


def test_the_default_precision_is_the_devices(cube, small_ae, monkeypatch):
    """The default asks the device (tests/test_precision.py checks the answer turns autocast on)."""
    asked = []
    monkeypatch.setattr(_precision, "bf16_pays", lambda device: asked.append(device.type) or False)
    default = single_threaded(xdepthrecon.encode(cube, small_ae).latent.compute)  # in this process
    assert set(asked) == {"cpu"}
    xr.testing.assert_identical(default, single_threaded(xdepthrecon.encode(cube, small_ae, fast=False).latent.compute))


def test_raw_layouts_are_standardised_first(cube, small_ae):
    raw = cube.rename({"thetao": "TEMP", "depth": "ZAX", "latitude": "YAX", "longitude": "XAX"})
    raw = raw.assign_coords(XAX=raw.XAX.values % 360).sortby("XAX")
    xr.testing.assert_allclose(xdepthrecon.encode(raw, small_ae).latent, xdepthrecon.encode(cube, small_ae).latent)


def test_the_model_is_one_key_of_the_graph_not_copied_into_every_task(small_ae):
    import pickle

    cube = glorys_like(times=4, lats=24, lons=40, seed=5).chunk({"time": 1, "latitude": 12, "longitude": 20})
    latents = xdepthrecon.encode(cube, small_ae)
    graph = dict(latents.latent.data.__dask_graph__())
    model_bytes = len(pickle.dumps(small_ae))
    holders = [key for key, task in graph.items() if len(pickle.dumps(task)) > model_bytes / 2]
    assert len(holders) == 1 and len(graph) > 16


def test_a_distributed_cluster_gives_the_single_process_result(small_ae, local_client):
    cube = glorys_like(times=3, lats=24, lons=40, seed=6).chunk({"time": 1, "latitude": 12})
    threads = torch.get_num_threads()
    try:  # the workers run torch single-threaded (dask sets OMP_NUM_THREADS=1); so does the reference
        torch.set_num_threads(1)
        with dask.config.set(scheduler="sync"):
            expected = xdepthrecon.decode(xdepthrecon.encode(cube, small_ae), small_ae).compute()
    finally:
        torch.set_num_threads(threads)
    latents = xdepthrecon.encode(cube, small_ae)
    result = local_client.compute(xdepthrecon.decode(latents, small_ae)).result()
    xr.testing.assert_equal(result.thetao, expected.thetao)
