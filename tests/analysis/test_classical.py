"""The classical analysis: the SST term, the analysis of a batch, saving, fitting and reconstructing with it."""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xdepthrecon
from xdepthrecon import AnalysisConfig, ObservationConfig, SamplingOptions, TrainingConfig
from xdepthrecon.analysis.background import SeasonalBackground
from xdepthrecon.analysis.classical import (MIN_SLOPE_COLUMNS, SST_SMOOTHING_CELLS, Analysis, AnalysisInputs, Guess,
                                            anchor)
from xdepthrecon.analysis.departures import DepartureAnalysis
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.stats.covariance import Covariance
from xdepthrecon.stats.smoothing import gaussian_mean
from xdepthrecon.training import analysis as training_analysis
from xdepthrecon.training.analysis import PRIOR_LENGTH_KM

from ..conftest import glorys_like

#: How each level's departure follows the SST's: the surface fully, the deepest level not at all.
FOLLOWS = torch.tensor([1.0, 0.6, 0.2, 0.0])[None, :, None, None]
LATITUDE = torch.linspace(-11.0, 11.0, 12)[None]  # a 2-degree grid at the equator
LONGITUDE = torch.arange(16.0)[None] * 2.0


def _background(levels: int = 4) -> torch.Tensor:
    """A smooth background (1, levels, 12, 16) in degC, colder with depth."""
    rows, columns = torch.meshgrid(torch.arange(12.0), torch.arange(16.0), indexing="ij")
    return (20.0 - 4.0 * torch.arange(float(levels))[:, None, None] + 0.1 * rows - 0.05 * columns)[None]


def _inputs(x: torch.Tensor, mask: torch.Tensor, sst: torch.Tensor, background: torch.Tensor) -> AnalysisInputs:
    return AnalysisInputs(torch.where(mask, x, torch.nan), mask, sst, background, LATITUDE, LONGITUDE)


def _smoothed(departure: torch.Tensor) -> torch.Tensor:
    """The SST's departure as the anchor carries it down: averaged over each cell's neighbours."""
    return gaussian_mean(departure, torch.ones_like(departure), SST_SMOOTHING_CELLS)


def _sst_following_truth(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A background, an SST departing from it by up to a few degC, and a truth whose departures are exactly
    :data:`FOLLOWS` x the SST's (beyond the grid scale), everywhere."""
    background = _background()
    sst = background[:, :1] + 3.0 * torch.randn(1, 1, 12, 16, generator=torch.Generator().manual_seed(seed))
    return background, sst, background + FOLLOWS * _smoothed(sst - background[:, :1])


def test_with_enough_profiles_the_sst_term_carries_the_sst_departure_down_level_by_level():
    background, sst, truth = _sst_following_truth()
    mask = torch.zeros(1, 4, 12, 16, dtype=torch.bool)
    mask[..., ::3, ::2] = True  # 32 profiles
    x = torch.where(mask, truth, 1e6)  # unobserved values never count
    anchored, departure, observed = anchor(_inputs(x, mask, sst, background), 1500.0)
    assert torch.equal(observed, mask)
    sst_departure = _smoothed(sst - background[:, :1]).abs().expand_as(truth)
    assert torch.all((anchored - truth).abs() <= 2e-2 * sst_departure)  # everywhere (slopes shrunk by the ridge)
    assert torch.all(departure[mask].abs() <= 2e-2 * sst_departure[mask]) and torch.all(departure[~mask] == 0)
    poisoned = x.clone()
    poisoned[0, 2, 0, 0] = torch.nan  # an observed level with no value does not count as observed
    assert not anchor(AnalysisInputs(poisoned, mask, sst, background, LATITUDE, LONGITUDE), 1500.0)[2][0, 2, 0, 0]


def test_with_too_few_profiles_there_is_no_sst_term():
    background, sst, truth = _sst_following_truth()
    mask = torch.zeros(1, 4, 12, 16, dtype=torch.bool)
    mask[0, :, 0, :MIN_SLOPE_COLUMNS - 1] = True
    anchored, departure, _ = anchor(_inputs(truth, mask, sst, background), 1500.0)
    torch.testing.assert_close(anchored, background, rtol=0, atol=0)
    torch.testing.assert_close(departure, torch.where(mask, truth - background, 0.0), rtol=0, atol=0)
    mask[0, :, 1, 0] = True  # one more column: enough
    anchored, _, _ = anchor(_inputs(truth, mask, sst, background), 1500.0)
    assert (anchored - background).abs().max() > 1.0


def test_each_region_gets_its_own_sst_slope():
    background, sst, _ = _sst_following_truth(seed=1)
    west = (torch.arange(16) < 8).float()  # level 1 follows the SST in the west, not at all in the east
    truth = background.clone()
    truth[:, 1] += west * _smoothed(sst - background[:, :1])[:, 0]
    mask = torch.ones(1, 4, 12, 16, dtype=torch.bool)
    anchored, _, _ = anchor(_inputs(truth, mask, sst, background), 500.0)  # ~2 cells of 2 degrees
    error = (anchored - truth)[0, 1].abs()
    one_slope = (0.5 * _smoothed(sst - background[:, :1])[0, 0]).abs()  # the error of one slope for the whole field
    for region in (slice(0, 3), slice(13, 16)):  # away from where the regions meet
        assert error[:, region].mean() < 0.3 * one_slope[:, region].mean()


def test_grid_scale_noise_of_the_sst_is_not_carried_down():
    background, sst, truth = _sst_following_truth()
    rows, columns = torch.meshgrid(torch.arange(12), torch.arange(16), indexing="ij")
    checkerboard = 0.5 * (-1.0) ** (rows + columns).float()  # noise at the grid scale, which no level follows
    mask = torch.zeros(1, 4, 12, 16, dtype=torch.bool)
    mask[..., ::3, ::2] = True
    anchored, _, _ = anchor(_inputs(truth, mask, sst + checkerboard, background), 1500.0)
    noisy = (anchored - truth)[0, 1:].abs().mean()
    assert noisy < 0.1 * 0.5 * FOLLOWS[0, 1:].mean()  # one slope would carry it down as 0.6 / 0.2 / 0 of 0.5 degC


def test_sst_departures_too_small_to_define_a_slope_make_no_steep_one():
    background = _background()
    generator = torch.Generator().manual_seed(2)
    mask = torch.zeros(1, 4, 12, 16, dtype=torch.bool)
    mask[..., 0:3:2, ::2] = True  # 16 profiles in the southern rows
    near = (torch.arange(12) < 6)[:, None].expand(12, 16)
    sst = torch.where(near, background[:, :1] + 0.001 * torch.randn(1, 1, 12, 16, generator=generator),
                      background[:, :1] + 2.0)  # 2 degC away from the profiles, hardly around them ...
    x = background + torch.rand(1, 4, 12, 16, generator=generator)  # ... where the levels depart by up to 1 degC
    anchored, _, _ = anchor(_inputs(x, mask, sst, background), 1500.0)
    assert (anchored - background).abs().max() < 0.1  # no slope of hundreds carrying 2 degC down as hundreds


DEPTH = np.array([0.5, 10.0, 50.0, 200.0, 1000.0])


def _analysis() -> Analysis:
    """An analysis of 5 levels on a 16 x 16 grid whose background is a fixed field (no season, no SST)."""
    latitude, longitude = np.linspace(-30.0, 30.0, 16), np.arange(16.0) * 4.0
    background = SeasonalBackground(0, 5, 16, 16)
    background.latitude.copy_(torch.from_numpy(latitude))
    background.longitude.copy_(torch.from_numpy(longitude))
    field = 20.0 - 4.0 * np.arange(5.0)[:, None, None] + 0.1 * latitude[:, None] - 0.05 * longitude
    background.field.copy_(torch.from_numpy(field[None]).float())
    departures = DepartureAnalysis.from_covariances([Covariance("matern32", 400.0, 1.0, 1e-4)] * 5, neighbours=8,
                                                     tile=4)
    analysis = Analysis(background, departures, AnalysisConfig(slope_scale_km=800.0))
    analysis.depth.copy_(torch.from_numpy(DEPTH))
    return analysis


def _one_profile(analysis: Analysis) -> AnalysisInputs:
    """One profile three levels deep at cell (3, 4) of the analysis's grid."""
    latitude, longitude = analysis.background.latitude.numpy(), analysis.background.longitude.numpy()
    sst = np.full((1, 16, 16), 25.0)
    background = analysis.background_at(np.array(["2021-03-01"], dtype="datetime64[ns]"), latitude, longitude, sst)
    x = torch.full((1, 5, 16, 16), torch.nan)
    x[0, :3, 3, 4] = torch.tensor([22.0, 15.0, 9.0])
    return AnalysisInputs(x, ~torch.isnan(x), torch.from_numpy(sst)[None].float(), background,
                          torch.from_numpy(latitude)[None], torch.from_numpy(longitude)[None])


def test_the_analysis_keeps_the_observations_and_returns_the_background_far_away():
    analysis = _analysis()
    inputs = _one_profile(analysis)
    background = inputs.background
    torch.testing.assert_close(background[0, :, :, 0], analysis.background.field[0, :, :, 0])
    guess = analysis(inputs)
    torch.testing.assert_close(guess.mean[0, :3, 3, 4], inputs.x[0, :3, 3, 4], atol=2e-3, rtol=0)  # nugget 1e-4
    torch.testing.assert_close(guess.mean[0, :, 14, 14], background[0, :, 14, 14], atol=1e-5, rtol=0)
    torch.testing.assert_close(guess.mean[0, 3:, 3, 4], background[0, 3:, 3, 4], atol=0, rtol=0)  # unobserved levels
    variance = guess.predicted_variance
    assert variance.shape == (1, 5, 16, 16) and torch.all(variance > 0)
    assert variance[0, 0, 3, 4] < 0.01 * variance[0, 0, 14, 14]
    only_mean = analysis(inputs, with_variance=False)
    assert only_mean.predicted_variance is None
    torch.testing.assert_close(only_mean.mean, guess.mean, rtol=0, atol=0)
    with pytest.raises(ValueError, match="the analysis has 5 levels; the observations have 4"):
        analysis(inputs._replace(x=inputs.x[:, :4], mask=inputs.mask[:, :4]))
    with pytest.raises(ValueError, match="the background has 5 levels; the departure analysis has 4"):
        Analysis(analysis.background, DepartureAnalysis(4))


def _with_gaps(analysis: Analysis) -> Analysis:
    """``analysis`` with departures from the climate nine times those from the anchored background."""
    analysis.gap_departures = DepartureAnalysis.from_covariances([Covariance("matern32", 400.0, 9.0, 1e-4)] * 5,
                                                                 neighbours=8, tile=4)
    return analysis


def _clouded(inputs: AnalysisInputs, analysis: Analysis) -> AnalysisInputs:
    """``inputs`` with the SST of the grid's right half hidden, the background there the climate, and the climate."""
    latitude, longitude = analysis.background.latitude.numpy(), analysis.background.longitude.numpy()
    climate = analysis.climate_at(np.array(["2021-03-01"], dtype="datetime64[ns]"), latitude, longitude)
    sst = inputs.sst.clone()
    sst[..., 8:] = torch.nan
    background = inputs.background.clone()
    background[..., 8:] = climate[..., 8:]
    return inputs._replace(sst=sst, background=background, climate=climate)


def test_where_the_sst_is_missing_the_analysis_spreads_the_departures_from_the_climate():
    analysis = _with_gaps(_analysis())
    clear = _one_profile(analysis)
    clouded = _clouded(clear, analysis)
    guess = analysis(clouded)
    gap = torch.zeros(16, 16, dtype=torch.bool)
    gap[:, 8:] = True
    # the cells with SST are analysed as without the cloud: the profile at (3, 4) has SST
    torch.testing.assert_close(guess.mean[..., ~gap], analysis(clear).mean[..., ~gap], rtol=0, atol=1e-5)
    # under the cloud: the climate plus the profile's departure from it, spread with the gap covariances
    departure = clouded.x[0, :3, 3, 4] - clouded.climate[0, :3, 3, 4]
    near, far = guess.mean[0, :3, 3, 8] - clouded.climate[0, :3, 3, 8], guess.mean[0, :, 14, 15]
    assert torch.all(near * departure > 0) and torch.all(near.abs() < departure.abs())
    torch.testing.assert_close(far, clouded.climate[0, :, 14, 15], rtol=0, atol=1e-4)
    variance = guess.predicted_variance[0]
    torch.testing.assert_close(variance[3:, 14, 15], torch.full((2,), 9.0 + 1e-4), rtol=1e-4, atol=0)  # the prior
    assert torch.all(variance[:, 14, 15] > 3.0 * variance[:, 14, 7])  # the stated error grows under the cloud


def test_profiles_under_a_cloud_draw_the_cloud_not_the_cells_with_sst():
    analysis = _with_gaps(_analysis())
    inputs = _clouded(_one_profile(analysis), analysis)
    x = torch.full_like(inputs.x, torch.nan)
    x[0, :3, 3, 10] = inputs.climate[0, :3, 3, 10] + 2.0  # a profile 2 degC above the climate, under the cloud
    guess = analysis(inputs._replace(x=x, mask=~torch.isnan(x)))
    torch.testing.assert_close(guess.mean[0, :3, 3, 10], x[0, :3, 3, 10], rtol=0, atol=2e-3)
    alone = analysis(inputs._replace(x=torch.full_like(x, torch.nan), mask=torch.zeros_like(inputs.mask)))
    torch.testing.assert_close(guess.mean[..., :8], alone.mean[..., :8], rtol=0, atol=0)


def test_the_analysis_of_a_fields_interior_uses_the_profiles_beyond_it():
    """A training patch within its halo: the analysis of the interior from every profile of the field is the
    analysis of the whole field cut to the interior (exactly so with fewer profiles than neighbours, one tile),
    with SST and under a cloud, for fields whose interiors lie at different places."""
    analysis = _with_gaps(_analysis())
    inputs = _clouded(_one_profile(analysis), analysis)
    x = inputs.x.clone()
    x[0, :3, 12, 12] = inputs.climate[0, :3, 12, 12] - 1.0  # a second profile, under the cloud
    inputs = inputs._replace(x=x, mask=~torch.isnan(x))
    batch = AnalysisInputs(*(None if v is None else torch.cat([v, v]) for v in inputs))
    spans = torch.tensor([[5, 6, 8, 8], [0, 8, 8, 8]])
    whole, part = analysis(batch), analysis(batch, interior=spans)
    assert part.mean.shape == part.predicted_variance.shape == (2, 5, 8, 8)
    for item, (top, left, rows, columns) in enumerate(spans.tolist()):
        for field in ("mean", "predicted_variance"):
            torch.testing.assert_close(getattr(part, field)[item], getattr(whole, field)[item, :, top:top + rows,
                                                                                         left:left + columns])
    clear_part = analysis(inputs, interior=torch.tensor([[0, 0, 8, 8]]))  # the cloud in the field, not the part
    torch.testing.assert_close(clear_part.mean, whole.mean[:1, :, :8, :8])
    # the profile at (3, 4), outside the first interior, still draws it
    alone = analysis(batch._replace(x=torch.where(batch.mask & (torch.arange(16) > 6)[:, None], batch.x, torch.nan),
                                    mask=batch.mask & (torch.arange(16) > 6)[:, None]), interior=spans)
    assert (part.mean[0, :3, 0, 0] - alone.mean[0, :3, 0, 0]).abs().min() > 1e-3


def test_missing_sst_needs_the_climate_and_older_analyses_analyse_it_as_before():
    analysis = _analysis()
    inputs = _clouded(_one_profile(analysis), analysis)
    before = analysis(inputs)  # no gap covariances (saved before them): the cells without SST as the others
    torch.testing.assert_close(before.mean, analysis(inputs._replace(climate=None)).mean, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"the SST is missing in 128 ocean cells .* pass AnalysisInputs\(climate="):
        _with_gaps(analysis)(inputs._replace(climate=None))
    ocean = torch.ones(1, 16, 16, dtype=torch.bool)
    ocean[..., 8:] = False  # land where the SST is missing: no gap to fill
    torch.testing.assert_close(analysis(inputs._replace(ocean=ocean, climate=None)).mean[..., :8],
                               before.mean[..., :8], rtol=0, atol=1e-5)
    config = _with_gaps(_analysis()).config
    assert Analysis.from_saved({k: v for k, v in config.items() if k != "gap_departures"}, {}).gap_departures is None


def test_check_levels_accepts_the_fitted_levels_and_says_how_to_match_them():
    analysis = _analysis()
    analysis.check_levels(DEPTH.astype(np.float32))
    with pytest.raises(ValueError, match=r"the data's 4 depth levels \(0.5 \.\.\. 200 m\) are not the 5 the analysis "
                                         r"was fitted on \(0.5 \.\.\. 1000 m\); interpolate the data to them"):
        analysis.check_levels(DEPTH[:4])
    with pytest.raises(ValueError, match="cube.interp"):
        analysis.check_levels(DEPTH + 5.0)


def test_the_settings_are_checked():
    with pytest.raises(ValueError, match="slope_scale_km must be a positive length in km, got 0"):
        AnalysisConfig(slope_scale_km=0.0)
    with pytest.raises(ValueError, match="folds must be >= 2"):
        AnalysisConfig(folds=1)


def test_an_analysis_saved_and_loaded_gives_identical_outputs(tmp_path):
    analysis = _with_gaps(_analysis())
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0.01, 1.0, (300, 5))
    analysis.error_model = ErrorModel.fit(predicted, 2.0 * predicted * rng.standard_normal((300, 5)) ** 2, bins=4)
    loaded = xdepthrecon.load(analysis.save(tmp_path / "analysis.safetensors"))
    assert isinstance(loaded, Analysis) and loaded.config == analysis.config and loaded.covered_error_model is None
    assert loaded.settings == AnalysisConfig(slope_scale_km=800.0)
    torch.testing.assert_close(loaded.depth, analysis.depth, rtol=0, atol=0)
    inputs = _clouded(_one_profile(analysis), analysis)
    guess, again = analysis(inputs), loaded(inputs)
    torch.testing.assert_close(again.mean, guess.mean, rtol=0, atol=0)
    torch.testing.assert_close(again.predicted_variance, guess.predicted_variance, rtol=0, atol=0)
    torch.testing.assert_close(loaded.error_variance(again), analysis.error_variance(guess), rtol=0, atol=0)


# --- fitting and reconstructing -------------------------------------------------------------------------------

SETTINGS = AnalysisConfig(block=60.0, folds=2, batches=2, neighbours=16)
TRAINING = TrainingConfig(patch_size=16, batch_size=4, val_fraction=0.25)


@pytest.fixture(scope="module")
def training_cube():
    """A cube of six time steps two months apart (a seasonal cycle to fit) and its surface as the SST."""
    cube = glorys_like(times=6, depths=5, lats=24, lons=32, seed=3)
    cube = cube.assign_coords(time=pd.date_range("2020-01-15", periods=6, freq="61D"))
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    return cube, sst


@pytest.fixture(scope="module")
def fitted(training_cube):
    cube, sst = training_cube
    return xdepthrecon.fit_analysis(cube, sst, config=SETTINGS, observations=ObservationConfig(density=(0.05, 0.2)),
                                    training=TRAINING, device="cpu", progress=False)


def test_fit_analysis_fits_the_departures_and_both_error_models(training_cube, fitted):
    cube, _ = training_cube
    assert isinstance(fitted, Analysis) and fitted.settings == SETTINGS and fitted.levels == 5
    np.testing.assert_allclose(fitted.depth.numpy(), cube.depth.values)
    lengths = fitted.departures.length_scale.numpy()
    assert np.all(np.isfinite(lengths) & (lengths > 0)) and not np.allclose(lengths, PRIOR_LENGTH_KM)
    assert lengths.shape == (SETTINGS.density_classes, 5) == (3, 5)  # one set per class of density
    np.testing.assert_allclose(fitted.departures.density_edges.numpy(), np.geomspace(0.05, 0.2, 4)[1:-1])
    assert not np.allclose(lengths[0], lengths[-1])  # fitted apart
    for model in (fitted.error_model, fitted.covered_error_model):
        assert isinstance(model, ErrorModel) and model.ratio.shape == (8, 5)
        assert torch.all(torch.isfinite(model.ratio) & (model.ratio > 0))
    assert not torch.equal(fitted.error_model.ratio, fitted.covered_error_model.ratio)
    gaps = fitted.gap_departures  # the departures from the climate, larger where the SST explains them
    assert isinstance(gaps, DepartureAnalysis) and gaps.length_scale.shape == (3, 5)
    assert torch.all(gaps.signal_variance[:, 0] > 2.0 * fitted.departures.signal_variance[:, 0])
    ocean = cube.thetao.notnull().any(("time", "depth")).values
    np.testing.assert_array_equal(fitted.background.covered.numpy(), ocean)


def test_the_covariances_are_fitted_on_small_patches_whatever_the_diffusion_recipe(training_cube, monkeypatch):
    cube, sst = training_cube
    loaders = []

    class Spy(training_analysis.PrefetchLoader):
        def __init__(self, dataset, batch_size, **kwargs):
            loaders.append((dataset.patch_size, batch_size))
            super().__init__(dataset, batch_size, **kwargs)

    monkeypatch.setattr(training_analysis, "PrefetchLoader", Spy)
    monkeypatch.setattr(training_analysis, "COVARIANCE_PATCH_SIZE", 8)  # at the scale of this small cube
    recipe = replace(TRAINING, patch_size=16, batch_size=2)  # patches larger than the covariance fit's, fewer
    xdepthrecon.fit_analysis(cube, sst, config=replace(SETTINGS, batches=1), training=recipe,
                             observations=ObservationConfig(density=(0.05, 0.2)), device="cpu", progress=False)
    assert loaders == [(8, training_analysis.COVARIANCE_BATCH_SIZE)] * 2  # with SST and without


def test_too_few_observed_columns_give_a_prior_covariance_with_a_warning(training_cube):
    cube, sst = training_cube
    with pytest.warns(UserWarning, match="too few observed columns"):
        sparse = xdepthrecon.fit_analysis(cube, sst, config=SETTINGS,
                                          observations=ObservationConfig(density=(1e-3, 2e-3)),
                                          training=TRAINING, device="cpu", progress=False)
    [covariances] = sparse.departures.covariances  # one class
    assert len(covariances) == 5 and len(set(covariances)) == 1
    prior = covariances[0]
    assert prior.kernel == SETTINGS.kernel and prior.length_scale == PRIOR_LENGTH_KM
    assert prior.noise_variance == pytest.approx(0.1 * prior.signal_variance, rel=1e-6)


def test_reconstruct_with_an_analysis_gives_its_mean_and_calibrated_error(training_cube, fitted):
    cube, sst = training_cube
    profiles = cube.depthrecon.sample_profiles(per_tile=100, seed=0)
    out = xdepthrecon.reconstruct(cube, profiles, sst, fitted).compute()
    assert set(out.data_vars) == {"thetao", "thetao_std", "observed"}
    ocean = cube.thetao.notnull()
    assert bool(out.thetao.notnull().equals(ocean)) and bool(out.thetao_std.notnull().equals(ocean))
    assert float(out.thetao_std.where(ocean).min()) > 0
    assert "model='Analysis'" in out.attrs["history"]
    observed = out.observed.broadcast_like(ocean) & ocean  # profiles without noise: the analysis keeps them
    error = np.abs((out.thetao - cube.thetao).where(observed))
    assert int(observed.sum()) > 0 and float(error.mean()) < 0.1 * float(np.abs(out.thetao - cube.thetao).mean())
    with pytest.raises(ValueError, match="a classical Analysis gives a mean and its calibrated error, no members"):
        xdepthrecon.reconstruct(cube, profiles, sst, fitted, options=SamplingOptions(keep_members=True))
    with pytest.raises(ValueError, match="interpolate the data to them"):
        xdepthrecon.reconstruct(cube.isel(depth=slice(0, 4)), profiles, sst, fitted)


def _eddying(seed: int) -> tuple[xr.Dataset, xr.Dataset]:
    """A regional cube (half-degree cells) like ``training_cube``'s with anomalies a few cells across (1 degC at the
    surface, fading with depth), new ones at each time step, and its surface as the SST."""
    from scipy.ndimage import gaussian_filter

    cube = glorys_like(times=6, depths=5, lats=24, lons=32, seed=3)
    cube = cube.assign_coords(time=pd.date_range("2020-01-15", periods=6, freq="61D"),
                              latitude=np.linspace(30.0, 41.5, 24), longitude=np.linspace(-60.0, -44.5, 32))
    noise = np.random.default_rng(seed).standard_normal((6, 1, 24, 32))
    anomaly = gaussian_filter(noise, (0, 0, 2.0, 2.0), mode="wrap")
    anomaly = anomaly / anomaly.std() * np.exp(-cube.depth.values / 500.0)[:, None, None]
    cube["thetao"] = cube.thetao + anomaly.astype("float32")
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    return cube, sst


def test_reconstruct_under_a_cloud_draws_to_the_profiles_and_states_a_larger_error():
    analysis = xdepthrecon.fit_analysis(*_eddying(seed=0), config=SETTINGS, training=TRAINING, device="cpu",
                                        observations=ObservationConfig(density=(0.05, 0.2)), progress=False)
    cube, sst = _eddying(seed=1)  # new anomalies
    profiles = cube.depthrecon.sample_profiles(per_tile=800, seed=0)  # 35 a time step, 1 in 20 columns
    cloud = (sst.longitude >= sst.longitude[16]).broadcast_like(sst.sst)
    clouded = xdepthrecon.reconstruct(cube, profiles, sst.where(~cloud), analysis).compute()
    clear = xdepthrecon.reconstruct(cube, profiles, sst, analysis).compute()
    ocean = cube.thetao.notnull()
    assert bool(clouded.thetao.notnull().equals(ocean))  # the cloud is analysed, not left NaN
    under = ocean & cloud
    climate = cube.thetao.copy(data=analysis.climate_at(cube.time.values, cube.latitude.values,
                                                        cube.longitude.values).numpy())
    rmse = lambda field: float(np.sqrt(((field - cube.thetao) ** 2).where(under).mean()))  # noqa: E731
    assert rmse(clouded.thetao) < 0.8 * rmse(climate)  # drawn to the profiles
    assert rmse(clear.thetao) < rmse(clouded.thetao)  # the SST helps where it is seen
    stated = lambda out: float(np.sqrt((out.thetao_std ** 2).where(under).mean()))  # noqa: E731
    assert stated(clouded) > 1.5 * stated(clear)
    assert 0.6 < stated(clouded) / rmse(clouded.thetao) < 1.6


def test_the_stated_error_blends_smoothly_between_covered_and_uncovered_regions():
    from xdepthrecon.analysis.errors import ErrorModel

    background = SeasonalBackground(1, 2, 30, 60)
    background.latitude.copy_(torch.linspace(-58.0, 58.0, 30, dtype=torch.float64))
    background.longitude.copy_(torch.arange(-177.0, 180.0, 6.0, dtype=torch.float64))
    background.covered[:, :30] = True  # the western hemisphere was trained on
    analysis = Analysis(background, DepartureAnalysis(2))
    coverage = analysis.coverage(background.latitude.numpy(), background.longitude.numpy())
    assert coverage.shape == (30, 60) and float(coverage.min()) >= 0.0 and float(coverage.max()) <= 1.0
    assert torch.all(coverage[:, 5:25] > 0.99) and torch.all(coverage[:, 35:55] < 0.01)
    steps = torch.cat([coverage.diff(dim=1), (coverage[:, :1] - coverage[:, -1:])], dim=1).abs()
    assert float(steps.max()) < 0.6 and float(steps[:, 28:31].min()) > 0.1  # a ramp, not a step
    torch.testing.assert_close(coverage[:, 0], 1.0 - coverage[:, 30], atol=1e-5, rtol=0)  # both edges alike
    predicted = np.linspace(0.1, 1.0, 40)[:, None].repeat(2, axis=1)
    analysis.error_model = ErrorModel.fit(predicted, 4.0 * predicted, bins=4)
    analysis.covered_error_model = ErrorModel.fit(predicted, predicted, bins=4)
    variance = analysis.error_variance(Guess(torch.zeros(1, 2, 30, 60), torch.full((1, 2, 30, 60), 0.5)), coverage)
    torch.testing.assert_close(variance[0, 0], 2.0 - 1.5 * coverage)


def test_the_density_class_counts_the_observed_fraction_over_the_ocean(training_cube, fitted, monkeypatch):
    """Training batches and reconstructed time steps carry their ocean, and the analysis picks each field's density
    class by the fraction of its ocean columns observed, not of all its cells."""
    from xdepthrecon.reconstruct import _inputs, _Step
    from xdepthrecon.training.observations import batch_inputs

    y = torch.randn(2, 5, 8, 8)
    y[:, :, :, 6:] = torch.nan  # land in two of eight columns of cells
    batch = {"y": y, "sst": y[:, :1], "background": torch.zeros_like(y), "cell_latitude": torch.zeros(2, 8),
             "cell_longitude": torch.zeros(2, 8)}
    inputs = batch_inputs(batch, ObservationConfig(density=(0.1, 0.1)), torch.Generator().manual_seed(0))
    torch.testing.assert_close(inputs.ocean, ~torch.isnan(y).all(dim=1))
    cube, sst = training_cube
    grid = cube.isel(time=[0])
    valid = grid.thetao.notnull().values[0]
    assert not valid.all()  # the cube has land
    step = _Step(np.full(valid.shape, np.nan, dtype=np.float32), np.zeros(valid.shape, dtype=np.float32),
                 sst.sst.isel(time=[0]).values.astype(np.float32), valid, grid.latitude.values, grid.longitude.values,
                 grid.time.values, 1.0)
    step.x[:, 2, 3] = 10.0 - np.arange(valid.shape[0])
    step.x_mask[:, 2, 3] = 1.0
    prepared = _inputs(fitted, step, torch.device("cpu"))
    torch.testing.assert_close(prepared.ocean[0], torch.from_numpy(valid.any(axis=0)))
    fractions = []
    departures_module = importlib.import_module("xdepthrecon.analysis.departures")
    looked_up = departures_module.density_classes

    def recording(fraction: Any, edges: np.ndarray) -> np.ndarray:
        fractions.extend(np.atleast_1d(fraction).tolist())
        return looked_up(fraction, edges)

    monkeypatch.setattr(departures_module, "density_classes", recording)
    fitted(prepared)
    assert fractions == [pytest.approx(1 / valid.any(axis=0).sum())]


def test_an_analysis_saved_before_the_seasonal_slopes_loads_with_constant_ones():
    config = _analysis().config
    config["settings"] = {k: v for k, v in config["settings"].items() if k != "slope_harmonics"}
    config["background"] = {k: v for k, v in config["background"].items() if k != "slope_harmonics"}
    old = Analysis.from_saved(config, {})
    assert old.settings.slope_harmonics == 0 and old.background.slope_harmonics == 0
    assert AnalysisConfig().slope_harmonics == 1
