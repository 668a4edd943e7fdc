"""The OSSE harness: splits, the method contract, tidy tables, band pooling, and an end-to-end run on the samples."""

from __future__ import annotations

import io
import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdepthrecon
from tests.conftest import glorys_like
from xdepthrecon.baselines.climatology import climatology
from xdepthrecon.baselines.interpolation import interpolate
from xdepthrecon.baselines.optimal_interpolation import optimal_interpolation
from xdepthrecon.evaluation.osse import (
    SCORE_COLUMNS,
    band_scores,
    osse,
    osse_case,
    region_mask,
    score_case,
    standard_baselines,
    time_mask,
)


@pytest.fixture(scope="module")
def samples() -> tuple[xr.Dataset, xr.Dataset]:
    """The bundled atlas cut to a CI size (6 months, 2 levels: 0 and 400 m) and the COADS SST."""
    atlas = xdepthrecon.open_sample("ocean_atlas").isel(time=[0, 2, 4, 6, 8, 10], depth=[0, 12])
    return atlas, xdepthrecon.open_sample("coads_sst")


@pytest.fixture(scope="module")
def case(samples):
    atlas, coads = samples
    return osse_case(atlas, coads, density=0.9, test_regions=[(20, 50, -60, -20)], test_times=[5], seed=0)


def _oracle(truth: xr.Dataset):
    def method(profiles, sst, grid, training):
        return truth.assign(thetao_std=truth.thetao * 0 + 0.5)

    return method


def test_osse_end_to_end_on_the_sample_data(samples, case):
    atlas, coads = samples
    methods = standard_baselines(max_blocks=4)
    table = score_case(case, methods)
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert set(table.method) == set(methods)
    assert set(table.region) == {"held_out", "trained"}
    assert set(table["columns"]) == {"all", "observed", "unobserved"}
    assert set(table.depth) == set(atlas.depth.values)
    probabilistic = set(table.loc[table.metric == "crps", "method"])
    assert probabilistic == {"optimal_interpolation", "sst_regression_oi", "classical_analysis"}
    rmse = table[(table.metric == "rmse") & (table["columns"] == "unobserved") & (table.region == "trained")]
    by_method = rmse.groupby("method").value.mean()
    assert by_method["optimal_interpolation"] < by_method["nearest"]
    assert by_method["optimal_interpolation"] < by_method["climatology"]
    assert by_method["classical_analysis"] < by_method["climatology"]
    observed = table[(table.metric == "rmse") & (table["columns"] == "observed") & (table.method == "nearest")]
    assert observed.value.max() < 0.05  # the profiles' values, 0.01 degC noise
    assert set(table.attrs["seconds"]) == set(methods)
    assert 0.01 < table.attrs["observed_column_fraction"] < 0.06
    records = json.loads(table.to_json(orient="records"))
    assert len(records) == len(table)
    back = pd.read_csv(io.StringIO(table.to_csv(index=False)))
    np.testing.assert_allclose(back.value.to_numpy(), table.value.to_numpy(), equal_nan=True)


def test_case_splits_training_and_test(case):
    thetao = case.training.thetao
    held_out_month = case.test_times.values
    assert held_out_month.sum() == 1
    assert thetao.isel(time=np.flatnonzero(held_out_month)).isnull().all()
    assert thetao.where(case.test_regions).isnull().all()
    kept = case.truth.thetao.where(~case.test_regions).isel(time=np.flatnonzero(~held_out_month))
    xr.testing.assert_identical(thetao.isel(time=np.flatnonzero(~held_out_month)).where(~case.test_regions),
                                kept.where(~case.test_regions))
    assert case.sst.sst.dims == ("time", "latitude", "longitude")
    assert case.grid.ocean.dtype == bool
    assert case.profiles.attrs["osse_noise"] == 0.01


def test_osse_is_seeded(samples):
    atlas, coads = samples
    small = atlas.isel(depth=[0])
    methods = {"nearest": partial(interpolate, method="nearest")}
    first = osse(small, coads, methods, per_tile=300, seed=3, test_times=[1])
    second = osse(small, coads, methods, per_tile=300, seed=3, test_times=[1])
    other = osse(small, coads, methods, per_tile=300, seed=4, test_times=[1])
    pd.testing.assert_frame_equal(first, second)
    assert not np.allclose(first.value, other.value, equal_nan=True)
    assert set(first.region) == {"all"}


def test_a_perfect_method_scores_zero_and_plugs_in(samples):
    atlas, coads = samples
    table = osse(atlas.isel(depth=[0, 1]), coads, {"oracle": _oracle(atlas.isel(depth=[0, 1]))}, density=0.5,
                 test_times=[1, 7])
    rmse = table[table.metric == "rmse"].value.dropna()
    assert len(rmse) and np.allclose(rmse, 0.0)
    crps = table[table.metric == "crps"].value.dropna()
    assert (crps > 0).all()  # a constant 0.5 std is not free


def test_without_test_times_every_time_is_scored(samples):
    atlas, coads = samples
    small = atlas.isel(depth=[0])
    table = osse(small, coads, {"nearest": partial(interpolate, method="nearest")}, density=0.9,
                 test_regions=[(-20, 20, -180, 180)])
    points = table[(table.metric == "points") & (table["columns"] == "all")].set_index("region").value
    ocean = small.thetao.notnull()
    inside = (abs(small.latitude) <= 20).broadcast_like(ocean)
    assert points["held_out"] == int((ocean & inside).sum())
    assert points["trained"] == int((ocean & ~inside).sum())


def test_a_bad_method_is_named(case):
    with pytest.raises(TypeError, match="'broken'"):
        score_case(case, {"broken": lambda profiles, sst, grid, training: profiles})
    with pytest.raises(ValueError, match="'cut'"):
        score_case(case, {"cut": lambda profiles, sst, grid, training: case.truth.isel(depth=[0])})


def test_region_mask_boxes_and_dateline():
    cube = glorys_like(lats=8, lons=16)
    mask = region_mask([(-10, 40, 150, -150)], cube)
    assert mask.dims == ("latitude", "longitude")
    lon = cube.longitude.values
    columns = mask.any("latitude").values
    np.testing.assert_array_equal(columns, (lon >= 150) | (lon <= -150))
    assert not region_mask(None, cube).any()
    given = cube.latitude > 0
    assert (region_mask(given & (cube.longitude < 0), cube) == (given & (cube.longitude < 0))).all()
    with pytest.raises(ValueError, match="box"):
        region_mask([(0, 10, 20)], cube)


def test_time_mask_months_and_climatology_times(samples):
    atlas, _ = samples
    assert not time_mask([2, 4], atlas).any()  # the sample cut holds months 1, 3, 5, 7, 9, 11
    assert time_mask([5, 11], atlas).values.tolist() == [False, False, True, False, False, True]
    daily = glorys_like(times=3)
    assert time_mask([1], daily).values.all()
    with pytest.raises(ValueError, match="calendar months"):
        time_mask([13], atlas)


def test_band_scores_pool_by_points():
    rows = []
    for depth, rmse, mae, points, spread in [(10.0, 1.0, 0.8, 100, 0.5), (50.0, 2.0, 1.6, 300, 1.0),
                                             (200.0, 3.0, 2.0, 50, 1.5)]:
        for metric, value in [("rmse", rmse), ("mae", mae), ("points", points), ("spread", spread),
                              ("spread_skill", spread / rmse), ("correlation", 0.9)]:
            rows.append(("m", "all", "all", depth, metric, value))
    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    bands = band_scores(table, bands=((0, 100), (100, 300)))
    top = bands[bands.band == "0-100 m"].set_index("metric").value
    assert top["rmse"] == pytest.approx(np.sqrt((100 * 1 + 300 * 4) / 400))
    assert top["mae"] == pytest.approx((100 * 0.8 + 300 * 1.6) / 400)
    assert top["points"] == 400
    assert top["spread_skill"] == pytest.approx(np.sqrt((100 * 0.25 + 300 * 1.0) / 400) / top["rmse"])
    assert "correlation" not in set(bands.metric)
    assert bands[bands.band == "100-300 m"].set_index("metric").value["rmse"] == pytest.approx(3.0)


def test_standard_baselines_share_the_method_signature(case):
    for name, method in standard_baselines().items():
        assert callable(method), name
    result = climatology(profiles=case.profiles, sst=case.sst, grid=case.grid, training=case.training)
    assert np.isnan(result.thetao.values[~case.grid.ocean.values]).all()
    analysis = optimal_interpolation(profiles=case.profiles, sst=case.sst, grid=case.grid, training=case.training,
                                     max_blocks=2)
    assert {"thetao", "thetao_std", "length_scale"} <= set(analysis.data_vars)


def test_score_case_scores_ensembles_with_the_fair_crps_when_asked(case):
    rng = np.random.default_rng(0)
    members = case.truth.thetao + xr.DataArray(rng.normal(0.0, 0.3, (3, *case.truth.thetao.shape)),
                                               dims=("member", *case.truth.thetao.dims))
    ensemble = {"ensemble": lambda **_: members.to_dataset(name="thetao")}
    plain, fair = (score_case(case, ensemble, fair=f).query("metric == 'crps'").value.to_numpy() for f in (False, True))
    expected = xdepthrecon.evaluate(members.to_dataset(name="thetao"), case.truth, mask=case.test_times,
                                    observed=case.observations.x_mask, by=xr.DataArray(
                                        np.where(case.test_regions.values, "held_out", "trained"),
                                        dims=("latitude", "longitude"), coords=case.test_regions.coords,
                                        name="region"), fair=True, resolution=False)
    finite = np.isfinite(fair)
    assert finite.any()
    assert (fair[finite] < plain[finite]).all()  # the fair CRPS removes the finite ensemble's penalty
    np.testing.assert_allclose(np.sort(fair[finite]), np.sort(expected.crps.values[np.isfinite(expected.crps.values)]),
                               rtol=1e-6)


def test_an_undated_truth_is_refused_with_the_fix():
    import xdepthrecon

    atlas = xdepthrecon.open_sample("ocean_atlas")
    sst = xdepthrecon.open_sample("coads_sst")
    with pytest.raises(ValueError, match=r"no date \(an undated cube\).*expand_dims\(time="):
        xdepthrecon.osse(atlas.isel(time=0).drop_vars("time"), sst.isel(time=0).drop_vars("time"), {},
                         density=0.05, seed=0)
