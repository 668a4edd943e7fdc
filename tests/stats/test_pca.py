"""Tests of xdepthrecon.stats.pca: exact at full rank, monotone in k, gappy projection, NaN pattern, laziness."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xdepthrecon.baselines import PCACompressor, pca_compress

from tests.conftest import glorys_like


def _rmse(a: xr.Dataset, b: xr.Dataset) -> float:
    return float(np.sqrt(np.nanmean((a.thetao.values - b.thetao.values) ** 2)))


def low_rank_cube(rank: int = 3, levels: int = 8, seed: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    """Columns ``mean + std * (basis @ amplitudes)`` with a ``rank``-dimensional basis, some cut by a bottom."""
    rng = np.random.default_rng(seed)
    cube = glorys_like(times=3, depths=levels, lats=12, lons=16, seed=seed)
    basis = np.linalg.qr(rng.standard_normal((levels, rank)))[0]
    amplitudes = rng.standard_normal((3, 12, 16, rank)) * np.array([3.0, 1.0, 0.3][:rank])
    columns = 10.0 - np.linspace(0.0, 8.0, levels) + (amplitudes @ basis.T) * np.linspace(2.0, 0.5, levels)
    values = np.moveaxis(columns, -1, 1)
    ocean_levels = np.full((12, 16), levels)
    ocean_levels[:4, :] = rng.integers(rank, levels, (4, 16))
    ocean_levels[0, :3] = 0
    cut = np.arange(levels)[:, None, None] >= ocean_levels[None]
    complete = np.where(np.broadcast_to(cut, values.shape), np.nan, values)
    cube["thetao"] = cube.thetao.copy(data=complete.astype(np.float64))
    return cube, values


def test_all_components_reconstruct_exactly_even_with_gaps(cube):
    levels = cube.sizes["depth"]
    rebuilt = pca_compress(cube, cube, levels)
    np.testing.assert_allclose(rebuilt.thetao.values, cube.thetao.values, atol=1e-4)
    assert rebuilt.thetao.attrs["units"] == "degC" and rebuilt.depth.attrs["positive"] == "down"


def test_error_decreases_with_the_number_of_components():
    train = glorys_like(times=4, depths=10, lats=16, lons=24, seed=1)
    test = glorys_like(times=2, depths=10, lats=16, lons=24, seed=2)
    errors = [_rmse(pca_compress(train, test, k), test) for k in range(1, 11)]
    assert all(later <= earlier + 1e-6 for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 1e-4 < errors[0]


def test_nan_pattern_is_preserved(cube):
    rebuilt = pca_compress(cube, cube, 2)
    xr.testing.assert_equal(rebuilt.thetao.isnull(), cube.thetao.isnull())
    latents = PCACompressor.fit(cube, 2).encode(cube)
    no_ocean = cube.thetao.isnull().all("depth")
    xr.testing.assert_equal(latents.latent.isnull().all("channel").transpose(*no_ocean.dims), no_ocean)
    np.testing.assert_array_equal(latents.ocean_levels.values, cube.thetao.notnull().sum("depth").values)


def test_gappy_projection_recovers_low_rank_columns_from_their_valid_levels():
    cube, full = low_rank_cube(rank=3)
    pca = PCACompressor.fit(cube, 3)
    assert pca.explained_variance[-1] > 1e-3
    latents = pca.encode(cube)
    rebuilt = pca.decode(latents)
    np.testing.assert_allclose(rebuilt.thetao.values, cube.thetao.values, atol=1e-4)
    # Amplitudes fitted on the valid levels of a cut column equal those of the whole column.
    whole = cube.copy()
    whole["thetao"] = cube.thetao.copy(data=full)
    cut = (cube.thetao.isnull().any("depth") & cube.thetao.notnull().any("depth")).values
    assert cut.sum() > 10
    expected = pca.encode(whole).latent.transpose("time", "latitude", "longitude", "channel").values[cut]
    got = latents.latent.transpose("time", "latitude", "longitude", "channel").values[cut]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_columns_with_fewer_valid_levels_than_components_are_fitted_exactly():
    cube, _ = low_rank_cube(rank=3)
    noise = np.random.default_rng(5).normal(0.0, 0.5, cube.thetao.shape)
    noisy = cube.assign(thetao=cube.thetao.copy(data=cube.thetao.values + noise))
    pca = PCACompressor.fit(noisy, 5)
    count = noisy.thetao.notnull().sum("depth")
    shallow = (count > 0) & (count <= 5)
    assert int(shallow.sum()) > 0
    error = (pca.decode(pca.encode(noisy)).thetao - noisy.thetao).where(shallow)
    assert float(abs(error).max()) < 1e-4


def test_normalisation_is_per_level_over_every_valid_value(cube):
    pca = PCACompressor.fit(cube, 3)
    values = cube.thetao.values
    np.testing.assert_allclose(pca.mean, np.nanmean(values, axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(pca.std, np.nanstd(values, axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(pca.components.T @ pca.components, np.eye(3), atol=1e-10)
    given = PCACompressor.fit(cube, 3, mean=np.zeros(6), std=np.full(6, 2.0))
    np.testing.assert_array_equal(given.std, 2.0)


def test_dask_input_stays_lazy_and_matches_numpy(cube, count_computes):
    pca = PCACompressor.fit(cube.chunk({"time": 1, "latitude": 4}), 3)
    eager = pca.decode(pca.encode(cube))
    with count_computes() as counter:
        lazy = pca.decode(pca.encode(cube.chunk({"time": 1, "latitude": 4})))
        assert counter.count == 0
    xr.testing.assert_allclose(lazy.compute(), eager)
    np.testing.assert_allclose(PCACompressor.fit(cube, 3).components, pca.components)


def test_bad_inputs_are_refused_with_what_to_do(cube):
    with pytest.raises(ValueError, match="n_components must be an integer from 1 to the number of depth levels"):
        PCACompressor.fit(cube, 7)
    pca = PCACompressor.fit(cube, 2)
    with pytest.raises(ValueError, match="depth levels differ .* interpolate"):
        pca.encode(cube.isel(depth=slice(0, 5)))
    with pytest.raises(ValueError, match="3 channels; this compressor has 2"):
        pca.decode(PCACompressor.fit(cube, 3).encode(cube))
    level = xr.DataArray(np.arange(cube.sizes["depth"]), dims="depth")
    row = xr.DataArray(np.arange(cube.sizes["latitude"]) % 2, dims="latitude")
    holes = cube.assign(thetao=cube.thetao.where(level != xr.where(row == 0, 0, cube.sizes["depth"] - 1)))
    holes.thetao.attrs = cube.thetao.attrs
    with pytest.raises(ValueError, match="no column .* valid value at every depth level"):
        PCACompressor.fit(holes, 2)
