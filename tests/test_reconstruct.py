"""train_diffusion and reconstruct on a tiny model: reproducible, seamless, honest spread, land kept."""

from __future__ import annotations

from dataclasses import replace

import copy
import importlib
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import xdepthrecon
from xdepthrecon import _precision
from xdepthrecon import DiffusionConfig, ObservationConfig, SamplingOptions
from xdepthrecon.evaluation.predictions import CALIBRATED_MEMBERS, MEMBERS_ATTRIBUTE
from xdepthrecon.diffusion.latent import STATISTICS
from xdepthrecon.training.config import DIFFUSION_TRAINING
from xdepthrecon.reconstruct import _rescaled
from xdepthrecon.training.observations import simulate_observations

from tests.conftest import glorys_like, single_threaded, tiny_autoencoder

NETWORK = DiffusionConfig(dim=8, mults=(1, 2), diffusion_steps=100)
TRAINING = replace(DIFFUSION_TRAINING, patch_size=16, batch_size=4)
SAMPLING = SamplingOptions(members=3, steps=4, tile=16, overlap=4, eta=1.0)


def train(cube, sst, ae, **kwargs):
    return xdepthrecon.train_diffusion(cube, sst, ae, config=NETWORK, training=TRAINING, progress=False, **kwargs)


@pytest.fixture(scope="module")
def setting():
    cube = glorys_like(times=2, depths=6, lats=32, lons=40, seed=1)
    sst = cube.thetao.isel(depth=0).rename("analysed_sst").to_dataset()
    sst.analysed_sst.attrs = {"units": "degC"}
    ae = tiny_autoencoder(cube, epochs=2)
    model = train(cube, sst, ae, epochs=2)
    profiles = cube.depthrecon.sample_profiles(per_tile=300, seed=0)
    return cube, sst, model, profiles


def test_training_records_history_and_freezes_the_autoencoder(setting):
    cube, sst, model, _ = setting
    assert [h["epoch"] for h in model.history] == [0, 1]
    assert all(np.isfinite(h["loss"]) and np.isfinite(h["val_loss"]) for h in model.history)
    assert not any(p.requires_grad for p in model.parameters())
    # the departures' spreads, measured on the training patches: the SST's about the guess's surface is a part of
    # the SST's own
    assert torch.all(model.residual_std > 0) and not torch.all(model.residual_std == 1)
    assert 0 < float(model.surface_departure_std) < float(sst.analysed_sst.std())


def test_reconstruction_shape_land_and_reproducibility(setting):
    cube, sst, model, profiles = setting
    first = cube.depthrecon.reconstruct(profiles, sst=sst, model=model, seed=3, options=SAMPLING)
    assert first.thetao.chunks is not None  # lazy until computed
    first = first.compute()
    second = xdepthrecon.reconstruct(cube, profiles, sst, model, seed=3, options=SAMPLING).compute()
    other = xdepthrecon.reconstruct(cube, profiles, sst, model, seed=4, options=SAMPLING).compute()
    assert first.thetao.dims == cube.thetao.dims and first.thetao.attrs["units"] == "degC"
    np.testing.assert_array_equal(np.isnan(first.thetao.values), np.isnan(cube.thetao.values))
    np.testing.assert_array_equal(first.thetao.values, second.thetao.values)
    assert not np.array_equal(np.nan_to_num(first.thetao.values), np.nan_to_num(other.thetao.values))
    assert "xdepthrecon.reconstruct(" in first.attrs["history"]


def test_members_differ_and_spread_is_positive_away_from_profiles(setting):
    cube, sst, model, profiles = setting
    out = xdepthrecon.reconstruct(cube, profiles, sst, model, options=replace(SAMPLING, keep_members=True)).compute()
    members = np.nan_to_num(out.thetao_members.values)
    # distinct draws; a barely trained denoiser (zero-initialised head) hardly uses its noisy input, so they
    # differ little, and the calibrated error carries the spread
    assert not np.array_equal(members[0], members[1]) and not np.array_equal(members[1], members[2])
    far = ~out.observed.values[:, None] & ~np.isnan(cube.thetao.values)
    assert np.all(out.thetao_std.values[far] > 0)
    np.testing.assert_allclose(out.thetao_members.mean("member").values, out.thetao.values, rtol=1e-5, atol=1e-5)


def test_members_are_scaled_to_the_calibrated_error(setting):
    cube, sst, model, profiles = setting
    drawing = copy.deepcopy(model)  # a network whose draws differ (a barely trained one's hardly do)
    generator = torch.Generator().manual_seed(7)
    for parameter in drawing.denoiser.parameters():
        parameter.data.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    options = replace(SAMPLING, keep_members=True)
    out = xdepthrecon.reconstruct(cube, profiles, sst, drawing, options=options).compute()
    raw = xdepthrecon.reconstruct(cube, profiles, sst, _without_error_model(drawing), options=options).compute()
    ocean = cube.thetao.notnull().values
    drawn = (raw.thetao_std.values > 1e-5) & ocean  # identical draws have no pattern to scale
    assert drawn[ocean].mean() > 0.75
    assert not np.allclose(raw.thetao_std.values[drawn], out.thetao_std.values[drawn], rtol=0.1)
    np.testing.assert_allclose(out.thetao_members.std("member", ddof=1).values[drawn], out.thetao_std.values[drawn],
                               rtol=1e-3)
    np.testing.assert_allclose(raw.thetao.values, out.thetao.values, rtol=1e-6, atol=1e-6)  # the mean is kept
    np.testing.assert_allclose(out.thetao_members.mean("member").values, out.thetao.values, atol=1e-5)
    assert out.thetao_members.attrs[MEMBERS_ATTRIBUTE] == CALIBRATED_MEMBERS  # evaluate scores them as such
    assert MEMBERS_ATTRIBUTE not in raw.thetao_members.attrs  # not scaled, their spread the network's own


def test_rescaling_keeps_the_mean_and_identical_members():
    members = [np.array([1.0, 5.0, 2.0]), np.array([3.0, 1.0, 2.0])]
    mean, variance = np.array([2.0, 3.0, 2.0]), np.array([2.0, 8.0, 0.0])
    scaled = _rescaled(members, mean, variance, floor=np.array([8.0, 2.0, 1.0]))
    np.testing.assert_allclose(scaled[0], [0.0, 4.0, 2.0])  # cell 0 stretched x2, cell 1 narrowed x0.5, 2 alike
    np.testing.assert_allclose(scaled[1], [4.0, 2.0, 2.0])
    assert _rescaled(members[:1], mean, variance, np.ones(3)) == members[:1]  # one member has no spread to scale


def _without_error_model(model: xdepthrecon.LatentDiffusion) -> xdepthrecon.LatentDiffusion:
    bare = copy.deepcopy(model)
    bare.error_model = bare.covered_error_model = None
    return bare


def test_training_calibrates_an_error_model_that_floors_the_spread(setting, tmp_path):
    cube, sst, model, profiles = setting
    assert model.error_model is not None and torch.all(model.error_model.ratio > 0)
    assert model.covered_error_model is not None and model.analysis.error_model is not None
    single = xdepthrecon.reconstruct(cube, profiles, sst, model, options=SAMPLING, members=1).compute()
    ocean = cube.thetao.notnull()
    assert bool((single.thetao_std.where(ocean) > 0).sum() == ocean.sum())  # one member: the calibrated error
    path = tmp_path / "d.safetensors"
    train(cube, sst, model.autoencoder, analysis=model.analysis, epochs=1, checkpoint=path)
    assert xdepthrecon.load(path).error_model is not None  # the final save holds it
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cannot resume.*model.dim: saved 8, asked 16"):
        xdepthrecon.train_diffusion(cube, sst, model.autoencoder, config=replace(NETWORK, dim=16),
                                    analysis=model.analysis, training=TRAINING, epochs=2, checkpoint=path,
                                    progress=False)
    with pytest.raises(ValueError, match=r"cannot resume.*observations.density"):
        train(cube, sst, model.autoencoder, analysis=model.analysis, epochs=2, checkpoint=path,
              observations=ObservationConfig(density=(0.1, 0.2)))
    assert path.read_bytes() == before


def test_replacement_honours_observed_values(setting):
    cube, sst, model, profiles = setting
    out = xdepthrecon.reconstruct(cube, profiles, sst, model, options=replace(SAMPLING, replace=True)).compute()
    gridded = cube.depthrecon.grid_profiles(profiles)
    observed = gridded.x_mask.values
    assert observed.sum() > 10
    np.testing.assert_allclose(out.thetao.values[observed], gridded.x.values[observed], atol=1e-5)


def test_save_load_round_trip_reproduces_samples(setting, tmp_path):
    cube, sst, model, profiles = setting
    path = model.save(tmp_path / "model.safetensors")
    loaded = xdepthrecon.load(path)
    first = xdepthrecon.reconstruct(cube, profiles, sst, model, seed=1, options=SAMPLING).thetao.values
    again = xdepthrecon.reconstruct(cube, profiles, sst, loaded, seed=1, options=SAMPLING).thetao.values
    np.testing.assert_array_equal(first, again)


def test_coords_only_grid_uses_the_sst_land_mask(setting):
    cube, sst, model, profiles = setting
    grid = xr.Dataset(coords={k: cube[k] for k in ("time", "latitude", "longitude")})
    out = xdepthrecon.reconstruct(grid, profiles, sst, model, options=SAMPLING).compute()
    np.testing.assert_allclose(out.depth.values, model.autoencoder.depth)
    land = np.isnan(sst.analysed_sst.values)
    assert np.all(np.isnan(out.thetao.values.transpose(1, 0, 2, 3)[:, land]))


def test_wrong_levels_and_bad_grid_are_refused(setting):
    cube, sst, model, profiles = setting
    with pytest.raises(ValueError, match="depth levels"):
        xdepthrecon.reconstruct(cube.isel(depth=slice(0, 4)), profiles, sst, model)
    undated = xdepthrecon.standardize(cube.isel(time=0, drop=True))
    with pytest.raises(ValueError, match=r"no date \(an undated cube\).*assign_coords\(time="):
        xdepthrecon.reconstruct(undated, profiles, sst, model)
    with pytest.raises(ValueError, match="no time coordinate"):
        xdepthrecon.reconstruct(xr.Dataset(coords={"latitude": cube.latitude, "longitude": cube.longitude}),
                                profiles, sst, model)


def test_simulated_observations_follow_density_and_depth_limit():
    y = torch.from_numpy(glorys_like(times=4, depths=6, lats=40, lons=40).thetao.values)
    generator = torch.Generator().manual_seed(0)
    x, mask = simulate_observations(y, ObservationConfig(density=(0.1, 0.1), noise=0.0), generator, depth_max_index=3)
    columns = mask.any(dim=1)
    ocean = ~torch.isnan(y).all(dim=1)
    assert 0.05 < float(columns.sum() / ocean.sum()) < 0.15
    assert not mask[:, 3:].any()
    torch.testing.assert_close(x[mask], y[mask])
    assert torch.isnan(x[~mask]).all()


def test_a_distributed_cluster_gives_the_single_process_result(setting, local_client):
    import pickle

    cube, sst, model, profiles = setting
    expected = single_threaded(
        lambda: xdepthrecon.reconstruct(cube, profiles, sst, model, seed=2, options=SAMPLING).compute())
    lazy = xdepthrecon.reconstruct(cube.chunk({"time": 1}), profiles, sst, model, seed=2, options=SAMPLING)
    graph = dict(lazy.thetao.data.__dask_graph__())
    model_bytes = len(pickle.dumps(model))
    assert sum(len(pickle.dumps(task)) > model_bytes / 2 for task in graph.values()) == 1  # shipped once
    result = local_client.compute(lazy).result()
    xr.testing.assert_equal(result, expected)


def test_bfloat16_denoiser_stays_close_to_fp32(setting):
    cube, sst, model, profiles = setting
    options = replace(SAMPLING, eta=0.0, fast=False)
    exact = xdepthrecon.reconstruct(cube, profiles, sst, model, seed=5, options=options).compute()
    fast = xdepthrecon.reconstruct(cube, profiles, sst, model, seed=5, options=replace(options, fast=True)).compute()
    np.testing.assert_array_equal(np.isnan(fast.thetao.values), np.isnan(exact.thetao.values))
    assert float(np.nanmean(np.abs(fast.thetao.values - exact.thetao.values))) < 0.1
    assert "fast=True" in fast.attrs["history"]


def test_the_default_precision_is_the_devices(setting, monkeypatch):
    """The default asks the device (tests/test_precision.py checks the answer turns autocast on); an explicit
    choice does not ask."""
    cube, sst, model, profiles = setting
    asked = []
    monkeypatch.setattr(_precision, "bf16_pays", lambda device: asked.append(device.type) or True)
    single_threaded(xdepthrecon.reconstruct(cube, profiles, sst, model, options=SAMPLING).compute)  # this process
    assert asked and set(asked) == {"cpu"}
    asked.clear()
    single_threaded(xdepthrecon.reconstruct(cube, profiles, sst, model, options=replace(SAMPLING, fast=False)).compute)
    assert not asked

def test_an_untrained_network_returns_the_analysis_guess_exactly(setting):
    cube, sst, model, profiles = setting
    silent = copy.deepcopy(model)
    for parameter in silent.denoiser.parameters():
        parameter.data.zero_()
    ensemble = xdepthrecon.reconstruct(cube, profiles, sst, silent, options=SAMPLING).compute()
    analysed = xdepthrecon.reconstruct(cube, profiles, sst, silent.analysis).compute()
    np.testing.assert_allclose(ensemble.thetao.values, analysed.thetao.values, atol=1e-4)
    assert np.all((ensemble.thetao_std >= 0).values[cube.thetao.notnull().values])


def test_the_condition_has_the_documented_channels(setting):
    cube, sst, model, _ = setting
    latent = model.autoencoder.latent_channels
    assert model.denoiser.condition_channels == model.condition_channels(latent) == 3 + 2 * latent
    assert model.cloud_cover == ObservationConfig().cloud_cover
    inputs = _step_inputs(model, cube, sst)
    inputs.sst[..., :5, :] = torch.nan  # a cloud over the first rows
    condition = model.prepare(inputs).condition
    valid = torch.isfinite(inputs.sst[:, 0])
    assert not valid[:, :5].any() and valid[:, 5:].float().mean() > 0.5  # the cloud and the land
    torch.testing.assert_close(condition[:, 1], valid.float())  # where the SST is valid
    assert torch.all(condition[:, 0][~valid] == 0) and condition[:, 0][valid].abs().sum() > 0
    guess = model.prepare(inputs).guess.mean
    departure = (inputs.sst[:, 0] - guess[:, 0]) / model.surface_departure_std  # the SST's departure
    torch.testing.assert_close(condition[:, 0][valid], departure[valid])
    assert torch.all(condition[:, 2:2 + latent] == 0)  # no profile: no observed departure


def test_the_condition_holds_the_observed_columns_departure_from_the_guess(setting):
    cube, sst, model, _ = setting
    latent = model.autoencoder.latent_channels
    inputs = _step_inputs(model, cube, sst)
    truth = torch.from_numpy(cube.thetao.isel(time=[0]).values.astype("float32"))
    (row, column), (other_row, other_column) = torch.nonzero(~torch.isnan(truth[0, 0]))[[0, -1]].tolist()
    columns = torch.zeros_like(inputs.mask[:, :1])
    columns[..., row, column] = columns[..., other_row, other_column] = True  # two ocean columns
    observed_inputs = inputs._replace(x=torch.where(columns, truth, torch.nan), mask=columns.expand_as(inputs.mask))
    prepared = model.prepare(observed_inputs)
    observed = prepared.condition[:, 2:2 + latent]
    with torch.no_grad():  # the departure of the observed columns' latent from the guess's, in the residual's units
        latent_of_columns = model.encode_target(torch.where(observed_inputs.mask, observed_inputs.x,
                                                            prepared.guess.mean))
    expected = (latent_of_columns - prepared.base) / model.residual_std[:, None, None]
    torch.testing.assert_close(observed[..., row, column], expected[..., row, column])
    assert observed[..., other_row, other_column].abs().max() > 0
    assert torch.all(observed.abs().sum(dim=1)[~columns[:, 0]] == 0)  # only where a column is observed
    torch.testing.assert_close(prepared.condition[:, 2 + latent], columns[:, 0].float())  # the observed fraction


def _step_inputs(model, cube, sst):
    """The analysis inputs of the cube's first time step, with its SST and no profiles."""
    from xdepthrecon.analysis.classical import AnalysisInputs

    step = cube.isel(time=[0])
    surface = torch.from_numpy(sst.analysed_sst.isel(time=[0]).values.astype("float32"))[:, None]
    x = torch.full((1, cube.sizes["depth"], cube.sizes["latitude"], cube.sizes["longitude"]), torch.nan)
    background = model.analysis.background_at(step.time.values, step.latitude.values, step.longitude.values,
                                              surface[:, 0].numpy())
    coordinate = lambda name: torch.from_numpy(step[name].values.astype("float32"))[None]  # noqa: E731
    return AnalysisInputs(x, torch.zeros_like(x, dtype=torch.bool), surface.clone(), background,
                          coordinate("latitude"), coordinate("longitude"),
                          torch.from_numpy(step.thetao.notnull().values[0, 0])[None],
                          model.analysis.climate_at(step.time.values, step.latitude.values, step.longitude.values))


def test_reconstruct_warns_when_the_sst_misses_more_than_the_model_saw_hidden(setting):
    cube, sst, model, profiles = setting
    ocean = cube.thetao.isel(depth=0, time=0).notnull()
    rows = ocean.latitude < ocean.latitude[int(0.3 * cube.sizes["latitude"])]  # about 30 % under clouds
    cloudy = sst.where(~rows)
    assert 0.2 < float((cloudy.analysed_sst.isnull() & ocean).sum() / ocean.sum()) < model.cloud_cover
    with warnings.catch_warnings():  # the time step's task runs in this thread, where warnings are caught
        warnings.simplefilter("error")
        xdepthrecon.reconstruct(cube.isel(time=[0]), profiles, cloudy, model, options=SAMPLING).compute(
            scheduler="synchronous")
    overcast = sst.where(ocean.latitude > ocean.latitude[int(0.8 * cube.sizes["latitude"])])
    with pytest.warns(UserWarning, match=r"misses \d+% of the ocean cells; this model saw at most 60%"):
        xdepthrecon.reconstruct(cube.isel(time=[0]), profiles, overcast, model, options=SAMPLING).compute(
            scheduler="synchronous")




def test_the_correction_gate_is_the_least_squares_weight_of_the_correction():
    """Where the network's correction is k times the truth's departure from the guess (k = 2, -1, 0.5 on three
    groups of levels), the gate is 1/k clipped to [0, 1]: 0.5, 0 and 1; gaps are skipped, and a level no sample
    holds keeps the whole correction. Each density class has its own; a class without samples takes every class's."""
    from xdepthrecon.training.diffusion import _correction_gate

    rng = np.random.default_rng(3)
    factor = np.array([2.0, 2.0, -1.0, -1.0, 0.5, 0.5, 1.0])
    samples = []
    for columns, member, scale in ((40, 0, 1.0), (25, 0, 1.0), (30, 2, 0.5)):
        miss = rng.normal(size=(columns, 7))
        correction = factor * miss * scale  # class 2: half the correction, so twice the gate (clipped to 1)
        miss[::3, 1] = np.nan  # below the bottom, or a gap
        correction[:, 6] = np.nan
        samples.append((correction.astype(np.float32), correction.astype(np.float32), miss.astype(np.float32),
                        np.full(columns, member)))
    gate = _correction_gate(samples, 3, 7)
    np.testing.assert_allclose(gate[0], [0.5, 0.5, 0.0, 0.0, 1.0, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(gate[2], [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0], rtol=1e-6)
    assert gate[1, 2] == 0.0 and 0.5 < gate[1, 0] < 1.0  # every class's weight: between the two
    np.testing.assert_array_equal(_correction_gate([], 2, 3), np.ones((2, 3)))


def test_the_gate_and_error_are_those_of_the_members_mean_not_of_one_noisy_correction():
    """Two one-step corrections whose noise (twice the signal's size) is independent: the gate is the least-squares
    weight of the mean of CALIBRATED_MEMBERS members (signal^2 / (signal^2 + noise^2 / members)), not the diluted
    weight of one correction (1 / 5), and the error estimate is the members' mean's, not one correction's."""
    from xdepthrecon.training.diffusion import CALIBRATED_MEMBERS, _correction_gate, _mean_square

    rng = np.random.default_rng(5)
    miss = rng.normal(size=(200_000, 1))
    first, second = (miss + 2.0 * rng.normal(size=miss.shape) for _ in range(2))
    gate = _correction_gate([(first, second, miss, np.zeros(len(miss), dtype=int))], 1, 1)
    expected = 1.0 / (1.0 + 4.0 / CALIBRATED_MEMBERS)
    np.testing.assert_allclose(gate, [[expected]], atol=0.02)
    members = miss + 2.0 * rng.normal(size=(CALIBRATED_MEMBERS, *miss.shape)).mean(axis=0)
    np.testing.assert_allclose(_mean_square(first, second, miss, expected).mean(),
                               np.square(expected * members - miss).mean(), rtol=0.03)


def test_the_error_model_is_calibrated_on_the_gated_estimate(setting, monkeypatch):
    """The calibration's error model is fitted on the squared error of the gated one-step estimate: with the
    network's correction k times the truth's departure (k = 2, -1, 0.5: gate 0.5, 0, 1), the gated estimate is the
    truth where k = 2 and misses elsewhere (the whole departure where the gate closes, half of it where it is 1)."""
    import xdepthrecon.training.diffusion as training_diffusion
    from xdepthrecon.analysis.errors import ErrorModel
    from xdepthrecon.training.analysis import training_data
    from xdepthrecon._halo import interior_of

    cube, sst, model, _ = setting
    model = copy.deepcopy(model)
    data = training_data(cube, sst, None, observations=ObservationConfig(), training=TRAINING)
    factor = torch.tensor([2.0, 2.0, -1.0, -1.0, 0.5, 0.5])[None, :, None, None]
    one_step = training_diffusion._one_step
    fitted, fit_errors = [], ErrorModel.fit

    def scaled_miss(model_, batch, random, data_, device):
        prepared, _ = one_step(model_, batch, random, data_, device)
        truth = interior_of(batch["y"], batch["interior"])  # stands in for r0: decode_residual reads it
        return prepared, [truth, truth]

    def decode(r, prepared, decoded_base=None):
        return prepared.guess.mean + factor * (r - prepared.guess.mean)

    def fit(predicted, squared_error, bins=8, gaps=None):
        fitted.append((squared_error, gaps))
        return fit_errors(predicted, squared_error, bins, gaps)

    monkeypatch.setattr(training_diffusion, "_one_step", scaled_miss)
    monkeypatch.setattr(model, "decode_residual", decode)
    monkeypatch.setattr(training_diffusion.ErrorModel, "fit", fit)
    training_diffusion._calibrate(model, data, None, TRAINING, torch.device("cpu"), progress=False)
    for gate in (model.correction_gate, model.gap_correction_gate):  # with SST, and under the simulated clouds
        torch.testing.assert_close(gate, torch.tensor([0.5, 0.5, 0.0, 0.0, 1.0, 1.0]).expand_as(gate))
    assert len(fitted) == 2 and model.error_model is not None and model.covered_error_model is not None
    for squared_error, gaps in fitted:
        assert np.nanmax(squared_error[:, :2]) < 1e-8  # gated: the truth
        assert np.nanmin(np.nanmean(squared_error[:, 2:], axis=0)) > 1e-4  # the guess's miss, or half of it
        assert gaps.shape == squared_error.shape[:1] and 0.0 < gaps.mean() < 0.6  # the columns under the clouds


def test_the_estimate_is_the_members_first_estimate_and_the_members_move_onto_it(setting, monkeypatch):
    """thetao is the gated, decoded mean of the members' first clean estimates (the network's one-step estimate of
    the mean, which the gates and error models are calibrated for), not the sampled members' mean: with first
    estimates of zero residual it is the guess (where the members' mean is not), and the members move onto it."""
    module = importlib.import_module("xdepthrecon.reconstruct")  # the package's name is the function
    cube, sst, model, profiles = setting
    loud = _without_error_model(model)  # a network whose draws depart from the guess, its correction ungated
    torch.manual_seed(0)
    for parameter in loud.denoiser.parameters():
        parameter.data.normal_(std=0.05)
    for gate in (loud.correction_gate, loud.gap_correction_gate):
        gate.fill_(1.0)
    options = replace(SAMPLING, keep_members=True)
    analysed = xdepthrecon.reconstruct(cube, profiles, sst, model.analysis).compute()
    drawn = module.sample
    assert np.nanmax(np.abs(xdepthrecon.reconstruct(cube, profiles, sst, loud, options=options).thetao.values
                            - analysed.thetao.values)) > 1e-2

    def first_at_zero(*arguments, **options):
        samples, first = drawn(*arguments, **options)
        return samples, torch.zeros_like(first)

    monkeypatch.setattr(module, "sample", first_at_zero)  # in this process: a cluster's workers would not see it
    ensemble = xdepthrecon.reconstruct(cube, profiles, sst, loud, options=options).compute(scheduler="sync")
    np.testing.assert_allclose(ensemble.thetao.values, analysed.thetao.values, atol=1e-4)
    np.testing.assert_allclose(ensemble.thetao_members.mean("member").values, ensemble.thetao.values, atol=1e-4)


def test_a_closed_gate_returns_the_guess_and_the_gate_is_saved(setting, tmp_path):
    cube, sst, model, profiles = setting
    assert torch.all((model.correction_gate >= 0) & (model.correction_gate <= 1))  # fitted in training
    closed = copy.deepcopy(model)
    closed.correction_gate.zero_()
    options = replace(SAMPLING, keep_members=True)
    ensemble = xdepthrecon.reconstruct(cube, profiles, sst, closed, options=options).compute()
    analysed = xdepthrecon.reconstruct(cube, profiles, sst, closed.analysis).compute()
    np.testing.assert_allclose(ensemble.thetao.values, analysed.thetao.values, atol=1e-4)
    np.testing.assert_allclose(ensemble.thetao_members.mean("member").values, ensemble.thetao.values, atol=1e-5)
    opened = xdepthrecon.reconstruct(cube, profiles, sst, _without_error_model(model), options=options).compute()
    closed_spread = _without_error_model(closed)  # members shift alike: the drawn spread is kept
    shut = xdepthrecon.reconstruct(cube, profiles, sst, closed_spread, options=options).compute()
    np.testing.assert_allclose(shut.thetao_std.values, opened.thetao_std.values, rtol=1e-3, atol=1e-6)
    closed.correction_gate.copy_(torch.linspace(0, 1, 6))
    torch.testing.assert_close(xdepthrecon.load(closed.save(tmp_path / "g.safetensors")).correction_gate,
                               closed.correction_gate)
    with pytest.raises(ValueError, match=r"correction_gate must hold 6 values or .* in \[0, 1\]"):
        type(model)(model.autoencoder, model.denoiser, model.schedule, model.analysis,
                    {name: getattr(model, name).numpy() for name in STATISTICS}, correction_gate=np.full(6, 1.5))



def test_where_the_sst_is_missing_the_gap_gate_weighs_the_correction(setting):
    cube, sst, model, profiles = setting
    gated = copy.deepcopy(model)
    gated.correction_gate.fill_(1.0)
    gated.gap_correction_gate.zero_()  # no correction under clouds
    gap = (sst.latitude > sst.latitude[10]) & (sst.latitude < sst.latitude[16])
    cloudy = sst.where(~gap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model may warn of the gap
        ensemble = xdepthrecon.reconstruct(cube, profiles, cloudy, gated, options=SAMPLING).compute()
    analysed = xdepthrecon.reconstruct(cube, profiles, cloudy, gated.analysis).compute()
    under = (cube.thetao.notnull() & gap).values
    clear = (cube.thetao.notnull() & ~gap).values
    np.testing.assert_allclose(ensemble.thetao.values[under], analysed.thetao.values[under], atol=1e-4)
    assert np.abs(ensemble.thetao.values[clear] - analysed.thetao.values[clear]).max() > 1e-3  # corrected there


def test_where_the_sst_is_missing_the_stated_error_takes_the_error_models_ratios_under_gaps(setting):
    cube, sst, model, profiles = setting
    gap = (sst.latitude > sst.latitude[10]) & (sst.latitude < sst.latitude[16])
    cloudy = sst.where(~gap)
    spreads = []
    for factor in (1.0, 4.0):  # the ratios under gaps as elsewhere, then four times larger
        stated = copy.deepcopy(model)
        for error in (stated.error_model, stated.covered_error_model):
            error.under_gaps = copy.deepcopy(error)
            error.under_gaps.ratio.mul_(factor)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the model may warn of the gap
            spreads.append(xdepthrecon.reconstruct(cube, profiles, cloudy, stated, options=SAMPLING).thetao_std
                           .compute().values)
    under = (cube.thetao.notnull() & gap).values
    clear = (cube.thetao.notnull() & ~gap).values
    np.testing.assert_allclose(spreads[1][under], 2.0 * spreads[0][under], rtol=1e-4)
    np.testing.assert_allclose(spreads[1][clear], spreads[0][clear], rtol=1e-5)


def test_a_grid_with_an_ocean_mask_is_reconstructed_under_sst_gaps_that_a_bare_grid_takes_for_land(setting):
    cube, sst, model, profiles = setting
    step = cube.isel(time=[0])
    ocean = step.thetao.notnull()
    gap = (step.latitude > step.latitude[10]) & (step.latitude < step.latitude[16])  # a cloud band
    cloudy = sst.where(~gap)
    bare = xr.Dataset(coords={name: step[name] for name in ("time", "latitude", "longitude")})
    masked = bare.assign(ocean=ocean)
    under = (ocean.isel(time=0, depth=0) & gap).transpose("latitude", "longitude").values
    for estimator in (model.analysis, model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the diffusion model may warn of the gap
            holes = xdepthrecon.reconstruct(bare, profiles, cloudy, estimator, options=SAMPLING).compute()
            full = xdepthrecon.reconstruct(masked, profiles, cloudy, estimator, options=SAMPLING).compute()
        assert holes.thetao.isel(time=0, depth=0).values[under].size > 0
        assert np.isnan(holes.thetao.isel(time=0, depth=0).values[under]).all()  # taken for land
        np.testing.assert_array_equal(full.thetao.notnull().values, ocean.values)  # the ocean, gap or not
    with pytest.raises(TypeError, match="'ocean' must be boolean"):
        xdepthrecon.reconstruct(bare.assign(ocean=ocean.astype(int)), profiles, cloudy, model.analysis)
