"""Scores against hand-computed values on tiny arrays; ensemble and Gaussian CRPS; spectra; laziness."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xdepthrecon.evaluation.metrics import crps_ensemble, crps_gaussian, evaluate
from xdepthrecon.evaluation.predictions import CALIBRATED_MEMBERS, MEMBERS_ATTRIBUTE
from xdepthrecon.evaluation.spectra import _arc, effective_resolution, wavenumber_spectra
from xdepthrecon.stats.geometry import KM_PER_DEGREE

NAN = np.nan


def tiny(values, lat=(0.0, 60.0), lon=(0.0, 10.0), depth=(0.0, 10.0)) -> xr.DataArray:
    """A (time=1, depth, latitude, longitude) field from nested lists (depth, latitude, longitude)."""
    return xr.DataArray(
        np.asarray(values, dtype="float64")[None],
        dims=("time", "depth", "latitude", "longitude"),
        coords={"time": pd.to_datetime(["2020-01-01"]), "depth": list(depth), "latitude": list(lat),
                "longitude": list(lon)},
        attrs={"units": "degC"},
    )


# cos(0) = 1 and cos(60) = 0.5: the weights of the two rows.
TRUTH = tiny([[[1, 2], [3, 4]], [[1, NAN], [3, 4]]])
PREDICTION = tiny([[[2, 2], [3, 6]], [[1, 5], [NAN, 2]]])


def test_scores_equal_hand_computed_values_with_weights_and_nan():
    scores = evaluate(PREDICTION, TRUTH)
    # depth 0: errors 1, 0 (weight 1) and 0, 2 (weight 0.5); weight sum 3.
    # depth 1: only (0, 0) error 0 (weight 1) and (1, 1) error -2 (weight 0.5) are valid in both.
    np.testing.assert_allclose(scores.bias, [2 / 3, -2 / 3])
    np.testing.assert_allclose(scores.mae, [2 / 3, 2 / 3])
    np.testing.assert_allclose(scores.rmse, [np.sqrt((1 + 0.5 * 4) / 3), np.sqrt(0.5 * 4 / 1.5)])
    np.testing.assert_array_equal(scores.points, [4, 2])
    assert scores.points.dtype == np.int64
    cov = np.cov([2, 2, 3, 6], [1, 2, 3, 4], aweights=[1, 1, 0.5, 0.5])
    np.testing.assert_allclose(scores.correlation[0], cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]))
    np.testing.assert_allclose(scores.correlation[1], 1.0)  # two points rising together
    assert scores.rmse.attrs["units"] == "degC" and scores.correlation.attrs["units"] == "1"
    assert "xdepthrecon.evaluate" in scores.attrs["history"]


def test_mask_restricts_the_points():
    mask = xr.DataArray([True, False], dims="longitude", coords={"longitude": [0.0, 10.0]})
    scores = evaluate(PREDICTION, TRUTH, mask=mask)
    np.testing.assert_allclose(scores.bias, [1 / 1.5, 0.0])  # depth 1 keeps only (0, 0), error 0
    np.testing.assert_allclose(scores.rmse, [np.sqrt(1 / 1.5), 0.0])
    np.testing.assert_array_equal(scores.points, [2, 1])


def test_a_depth_without_valid_points_is_nan_with_points_zero():
    truth = TRUTH.copy()
    truth[:, 1] = NAN
    scores = evaluate(PREDICTION, truth)
    assert np.isnan(scores.rmse[1]) and np.isnan(scores.correlation[1]) and scores["points"][1] == 0


def test_observed_and_unobserved_columns_are_scored_apart():
    observed = xr.DataArray([[True, False], [False, False]], dims=("latitude", "longitude"),
                            coords={"latitude": [0.0, 60.0], "longitude": [0.0, 10.0]})
    scores = evaluate(PREDICTION, TRUTH, observed=observed)
    assert list(scores.columns.values) == ["all", "observed", "unobserved"]
    xr.testing.assert_allclose(scores.rmse.sel(columns="all", drop=True), evaluate(PREDICTION, TRUTH).rmse)
    np.testing.assert_allclose(scores.bias.sel(columns="observed"), [1.0, 0.0])
    # unobserved depth 0: errors 0 (weight 1) and 0, 2 (weight 0.5); depth 1: only (1, 1), error -2.
    np.testing.assert_allclose(scores.bias.sel(columns="unobserved"), [0.5, -2.0])
    counts = scores["points"]
    np.testing.assert_array_equal(counts.sel(columns="observed") + counts.sel(columns="unobserved"),
                                  counts.sel(columns="all"))


def test_a_per_level_observation_mask_is_reduced_over_depth(cube):
    x_mask = xr.zeros_like(cube.thetao, dtype=bool)
    x_mask[:, 2, 3, 5] = True  # one column observed at one level only
    scores = evaluate(cube.thetao + 1.0, cube, observed=x_mask)
    observed_counts = scores["points"].sel(columns="observed")
    assert int(observed_counts.max()) == cube.sizes["time"]  # the whole column counts as observed


def test_by_time_keeps_the_time_dimension_and_labels_split_regions(cube):
    prediction = cube.thetao + xr.DataArray([0.5, -1.0], dims="time", coords={"time": cube.time})
    per_time = evaluate(prediction, cube, by="time")
    assert per_time.rmse.dims == ("depth", "time")
    np.testing.assert_allclose(per_time.bias.isel(depth=0), [0.5, -1.0], rtol=1e-6)
    north = cube.latitude > 0
    labels = xr.where(north, "north", "south").rename("basin")
    by_region = evaluate(prediction, cube, by=labels)
    assert list(by_region.basin.values) == ["north", "south"]
    xr.testing.assert_allclose(by_region.rmse.sel(basin="north", drop=True),
                               evaluate(prediction, cube, mask=north).rmse)
    assert by_region.effective_resolution.dims == ("depth", "basin")


def test_a_perfect_ensemble_has_zero_crps_and_a_constant_one_the_mae():
    perfect = xr.concat([TRUTH] * 4, dim="member")
    for fair in (False, True):
        np.testing.assert_allclose(evaluate(perfect, TRUTH, fair=fair).crps, 0.0, atol=1e-12)
    constant = xr.Dataset({"thetao_members": xr.concat([PREDICTION] * 3, dim="member")})
    for fair in (False, True):
        scores = evaluate(constant, TRUTH, fair=fair)
        xr.testing.assert_allclose(scores.crps, scores.mae.rename("crps"), check_dim_order=False)
        np.testing.assert_allclose(scores.spread, 0.0)


def test_ensemble_crps_equals_the_pairwise_definition():
    rng = np.random.default_rng(3)
    members = rng.normal(size=(5, 7))
    truth = rng.normal(size=7)
    size = members.shape[0]
    skill = np.abs(members - truth).mean(0)
    pairs = np.abs(members[:, None] - members[None]).sum((0, 1))
    got = crps_ensemble(xr.DataArray(members, dims=("member", "x")), xr.DataArray(truth, dims="x"))
    np.testing.assert_allclose(got, skill - pairs / (2 * size**2))
    fair = crps_ensemble(xr.DataArray(members, dims=("member", "x")), xr.DataArray(truth, dims="x"), fair=True)
    np.testing.assert_allclose(fair, skill - pairs / (2 * size * (size - 1)))


def test_ensemble_scores_use_the_member_mean_and_corrected_spread():
    offsets = xr.DataArray([-1.0, 0.0, 1.0], dims="member")
    ensemble = PREDICTION + offsets  # mean = PREDICTION, member variance (ddof=1) = 1 everywhere
    scores = evaluate(xr.Dataset({"thetao": ensemble}), TRUTH)
    reference = evaluate(PREDICTION, TRUTH)
    xr.testing.assert_allclose(scores.rmse, reference.rmse)
    np.testing.assert_allclose(scores.spread, 1.0)
    np.testing.assert_allclose(scores.spread_skill, np.sqrt(4 / 3) / reference.rmse)
    assert "3 members" in scores.attrs["prediction"]


def test_gaussian_crps_known_value_and_zero_std_limit():
    zero = xr.DataArray([0.0])
    np.testing.assert_allclose(crps_gaussian(zero, zero + 1.0, zero), 2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi))
    for std in (0.0, 1e-9):
        scores = evaluate(xr.Dataset({"thetao": PREDICTION, "thetao_std": PREDICTION * 0 + std}), TRUTH)
        np.testing.assert_allclose(scores.crps, scores.mae, atol=1e-8)


def test_gaussian_crps_matches_a_large_ensemble():
    rng = np.random.default_rng(0)
    mean, std, truth = 0.3, 0.7, -0.2
    draws = xr.DataArray(rng.normal(mean, std, 20_000), dims="member")
    ensemble = float(crps_ensemble(draws, xr.DataArray(truth), fair=True))
    closed = float(crps_gaussian(xr.DataArray(mean), xr.DataArray(std), xr.DataArray(truth)))
    assert abs(ensemble - closed) < 0.01


def _unit_gaussian_truth_and_draws(seed: int, members: int) -> tuple[xr.DataArray, xr.DataArray]:
    """A truth drawn from N(0, 1) on one level of a 40 x 400 grid, and ``members`` independent N(0, 1) draws."""
    rng = np.random.default_rng(seed)
    shape = (1, 1, 40, 400)
    coords = {"time": [0], "depth": [0.0], "latitude": np.linspace(-30, 30, 40),
              "longitude": np.linspace(-179, 179, 400)}
    dims = ("time", "depth", "latitude", "longitude")
    truth = xr.DataArray(rng.normal(size=shape), dims=dims, coords=coords)
    return truth, xr.DataArray(rng.normal(size=(members, *shape)), dims=("member", *dims), coords=coords)


def test_reliable_predictions_have_spread_skill_near_one():
    truth, members = _unit_gaussian_truth_and_draws(1, 4)
    assert abs(evaluate(members, truth).spread_skill.item() - 1.0) < 0.03
    gaussian = xr.Dataset({"thetao": truth * 0, "thetao_std": truth * 0 + 1.0})
    assert abs(evaluate(gaussian, truth).spread_skill.item() - 1.0) < 0.03


def test_members_centred_and_scaled_to_a_reliable_stated_error_score_spread_skill_one_and_fair_crps_warns():
    """Members made as reconstruct makes them (centred on the stated mean, scaled cell by cell to the stated error):
    the finite-ensemble factor of independent draws would put a reliable ensemble's spread/skill at sqrt(17/16);
    their fair CRPS is below the stated Gaussian's, and asking for it warns."""
    truth, draws = _unit_gaussian_truth_and_draws(2, 16)
    members = (draws - draws.mean("member")) / draws.std("member", ddof=1)  # mean 0 and spread 1 exactly
    stated = xr.Dataset({"thetao": truth * 0, "thetao_std": truth * 0 + 1.0})
    independent = evaluate(stated.assign(thetao_members=members), truth, resolution=False)
    assert independent.spread_skill.item() == pytest.approx(np.sqrt(17 / 16) * independent.spread.item()
                                                            / independent.rmse.item())
    members.attrs[MEMBERS_ATTRIBUTE] = CALIBRATED_MEMBERS
    marked = stated.assign(thetao_members=members)
    scores = evaluate(marked, truth, resolution=False)
    assert abs(scores.spread_skill.item() - 1.0) < 0.03
    assert scores.spread_skill.item() == pytest.approx(scores.spread.item() / scores.rmse.item())
    assert "centred on thetao" in scores.attrs["prediction"]
    with pytest.warns(UserWarning, match="not independent draws: their fair CRPS is optimistic"):
        fair = evaluate(marked, truth, fair=True, resolution=False).crps.item()
    gaussian = evaluate(stated, truth, resolution=False).crps.item()
    assert fair < 0.98 * gaussian


def test_dataarray_and_dataset_inputs_agree(cube):
    prediction = cube.thetao * 1.01
    xr.testing.assert_identical(
        evaluate(prediction, cube).drop_attrs(), evaluate(cube.assign(thetao=prediction), cube.thetao).drop_attrs()
    )


def test_evaluate_is_lazy_on_dask_and_equals_numpy(cube, count_computes):
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.2, (3, *cube.thetao.shape))
    members = cube.thetao + xr.DataArray(noise, dims=("member", *cube.thetao.dims))
    observed = cube.thetao.isel(depth=0).notnull() & (cube.longitude > 0)
    eager = evaluate(members, cube, observed=observed, by="time")
    with count_computes() as counter:
        lazy = evaluate(members.chunk(time=1, member=1), cube.chunk(time=1), observed=observed.chunk(time=1), by="time")
    assert counter.count == 0
    assert lazy.rmse.chunks is not None
    xr.testing.assert_allclose(lazy.compute().drop_attrs(), eager.drop_attrs())


def test_prediction_and_truth_are_aligned_on_shared_coordinates(cube):
    scores = evaluate(cube.isel(time=[1], longitude=slice(4, None)), cube)
    np.testing.assert_allclose(scores.rmse, 0.0)
    assert int(scores["points"][0]) == int(cube.thetao.isel(time=1, depth=0, longitude=slice(4, None)).count())


@pytest.mark.parametrize(
    ("prediction", "kwargs", "error", "message"),
    [
        (xr.Dataset({"temp": TRUTH}), {}, ValueError, "no 'thetao'"),
        (TRUTH.assign_coords(longitude=[20.0, 30.0]), {}, ValueError, "share no longitude"),
        (TRUTH, {"mask": TRUTH.notnull().astype(int)}, TypeError, "boolean DataArray"),
        (TRUTH.expand_dims(member=1), {}, ValueError, "2 or more members"),
        (TRUTH, {"by": "depth"}, ValueError, "not a dimension to keep"),
    ],
)
def test_bad_inputs_say_what_to_do(prediction, kwargs, error, message):
    with pytest.raises(error, match=message):
        evaluate(prediction, TRUTH, **kwargs)


# --- spectra and effective resolution --------------------------------------------------------


def zonal_waves(
    cutoff: int | None, lons: int = 64, lats: tuple[float, ...] = (0.0, 30.0)
) -> tuple[xr.DataArray, xr.DataArray]:
    """Truth: equal-amplitude zonal waves 1 .. lons/2 - 1 with random phases; prediction keeps waves <= cutoff."""
    rng = np.random.default_rng(4)
    lon = -180.0 + np.arange(lons) * 360.0 / lons
    waves = np.arange(1, lons // 2)
    phases = rng.uniform(0, 2 * np.pi, (2, len(lats), waves.size))
    angle = np.deg2rad(lon)[None, None, None, :] * waves[None, None, :, None] + phases[..., None]
    components = np.cos(angle)  # (time, lat, wave, lon)
    truth = components.sum(2)
    kept = components[:, :, waves <= (cutoff if cutoff is not None else 0)].sum(2)
    coords = {"time": [0, 1], "depth": [0.0], "latitude": list(lats), "longitude": lon}
    dims = ("time", "depth", "latitude", "longitude")
    as_cube = lambda v: xr.DataArray(v[:, None], dims=dims, coords=coords)  # noqa: E731
    return as_cube(kept), as_cube(truth)


def test_effective_resolution_of_a_low_pass_prediction():
    prediction, truth = zonal_waves(cutoff=5)
    resolution = effective_resolution(prediction, truth)
    # score 1 up to wave 5, 0 from wave 6: crossing at wave 5.5 (cycles per 360 degrees).
    mean_cos = (1 + np.cos(np.deg2rad(30)) ** 2) / (1 + np.cos(np.deg2rad(30)))
    np.testing.assert_allclose(resolution, 360.0 / 5.5 * KM_PER_DEGREE * mean_cos)
    assert resolution.attrs["units"] == "km"
    spectra = wavenumber_spectra(prediction, truth)
    np.testing.assert_allclose(spectra.score.isel(depth=0)[:5], 1.0)
    np.testing.assert_allclose(spectra.score.isel(depth=0)[5:-1], 0.0, atol=1e-12)


def test_effective_resolution_bounds_and_undefined_cases():
    _, truth = zonal_waves(cutoff=None)
    spacing = 360.0 / 64
    mean_cos = (1 + np.cos(np.deg2rad(30)) ** 2) / (1 + np.cos(np.deg2rad(30)))
    np.testing.assert_allclose(effective_resolution(truth + 1.0, truth), 2 * spacing * KM_PER_DEGREE * mean_cos)
    assert np.isnan(effective_resolution(truth * 0, truth)).all()  # nothing resolved
    with_gap = truth.where(truth.longitude != truth.longitude[3])  # no complete row left
    assert np.isnan(effective_resolution(truth + 1.0, with_gap)).all()


def test_rows_with_gaps_are_left_out():
    prediction, truth = zonal_waves(cutoff=5)
    holed = truth.where(~((truth.latitude == 30.0) & (truth.longitude == truth.longitude[7])))
    spectra = wavenumber_spectra(prediction, holed)
    assert spectra.rows.item() == 2  # both times at latitude 0 only
    np.testing.assert_allclose(effective_resolution(prediction, holed), 360.0 / 5.5 * KM_PER_DEGREE)


def test_a_regional_mask_sets_a_windowed_arc():
    prediction, truth = zonal_waves(cutoff=5, lons=128)
    region = (truth.longitude >= 0) & (truth.longitude < 120)
    spectra = wavenumber_spectra(prediction, truth, mask=region)
    assert spectra.sizes["wavenumber"] == int(region.sum()) // 2
    resolution = float(effective_resolution(prediction, truth, mask=region).squeeze())
    assert 0.5 * 360 / 5.5 * KM_PER_DEGREE < resolution < 1.5 * 360 / 5.5 * KM_PER_DEGREE


@pytest.mark.parametrize(
    ("inside", "periodic", "expected"),
    [
        ([0, 0, 1, 1, 1, 0, 0, 0, 0, 0], True, [2, 3, 4]),
        ([1, 1, 0, 0, 0, 0, 0, 0, 1, 1], True, [8, 9, 0, 1]),
        ([1, 1, 0, 0, 0, 0, 0, 0, 1, 1], False, list(range(10))),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], True, list(range(10))),
    ],
)
def test_arc_is_the_shortest_span_of_the_mask(inside, periodic, expected):
    mask = xr.DataArray(np.array(inside, dtype=bool), dims="longitude")
    np.testing.assert_array_equal(_arc(mask, 10, periodic), expected)


def test_spectra_are_lazy_on_dask(count_computes):
    prediction, truth = zonal_waves(cutoff=5)
    with count_computes() as counter:
        lazy = effective_resolution(prediction.chunk(time=1), truth.chunk(time=1))
    assert counter.count == 0
    xr.testing.assert_allclose(lazy.compute(), effective_resolution(prediction, truth))


def test_real_atlas_resolution_orders_smooth_and_sharp_predictions():
    import xdepthrecon

    truth = xdepthrecon.open_sample("ocean_atlas").isel(time=slice(0, 2))
    smooth = truth.thetao.rolling(longitude=9, center=True, min_periods=1).mean()
    scores = {name: evaluate(p, truth).effective_resolution for name, p in
              [("smooth", smooth), ("sharp", truth.thetao.rolling(longitude=3, center=True, min_periods=1).mean())]}
    defined = scores["smooth"].notnull() & scores["sharp"].notnull()
    assert int(defined.sum()) > 5
    assert bool((scores["smooth"] > scores["sharp"]).where(defined, True).all())


def test_every_combination_of_labels_is_scored(cube):
    basin = xr.where(cube.longitude > 0, "east", "west").rename("basin")
    band = xr.where(cube.latitude > 0, 1, 2).rename("band")
    scores = evaluate(cube.thetao + 0.1, cube, by=[basin, band])
    assert scores.rmse.dims == ("depth", "basin", "band")
    for b, n in itertools.product(["east", "west"], [1, 2]):
        mask = (basin == b) & (band == n)
        expected = evaluate(cube.thetao + 0.1, cube, mask=mask).rmse
        xr.testing.assert_allclose(scores.rmse.sel(basin=b, band=n, drop=True), expected)
