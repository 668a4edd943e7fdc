"""Issue 17's experiment (benchmarks/bench_nature_run.py) at CI size on the eddying nature run: the time split keeps
the test years out of training, every method is scored on the same unobserved columns, and the ablation is the
guess the diffusion model decodes onto (a silent network gives it back exactly)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nature_run.py"
DENSITY = 0.04
#: Cheap methods (the OI baselines are tested in test_osse.py) beside the model and its ablation.
METHODS = ("climatology", "sst_regression", "classical_analysis", "diffusion_guess", "diffusion",
           "diffusion_stated_std")


def _benchmark() -> ModuleType:
    if not BENCHMARK.exists():
        pytest.skip("benchmarks/ is not part of this checkout")
    spec = importlib.util.spec_from_file_location("bench_nature_run", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def _experiment(path: Path):
    """Eight training snapshots, one test snapshot, 4 % of columns observed; no training epochs, so the network is
    silent (its head starts at zero) and the diffusion model must return its guess."""
    bench = _benchmark()
    plan = bench.Plan(densities=(DENSITY,), train_every=100, test_every=110, members=2, steps=2,
                      autoencoder_epochs=0, diffusion_epochs=0)
    truth, sst, test, record = bench.load(path, plan)
    case = bench.observe(truth, sst, test, DENSITY, plan)
    _, model = bench.train_models(case, plan)
    ensemble = bench.diffusion_ensemble(case, model, plan)
    table, predictions = bench.score_density(case, model, ensemble, DENSITY, plan, names=METHODS)
    return bench, plan, record, case, table, predictions


@pytest.fixture
def experiment(shared_data):
    path = shared_data / "qg_nature_run.nc"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return _experiment(path)


def _years(times) -> np.ndarray:
    return pd.DatetimeIndex(times).year.to_numpy()


def test_no_test_year_reaches_training(experiment):
    bench, plan, record, case, _, _ = experiment
    index = bench.split(np.asarray(case.truth.time.values), bench.Plan(train_every=1, test_every=1))
    assert index["train"].size + index["test"].size == case.truth.sizes["time"]  # no validation year is loaded
    training = bench.training_cube(case)
    assert training.sizes["time"] == record["train"]["snapshots_used"] == 8
    assert set(_years(training.time.values)) <= set(range(2001, 2011)) | set(range(2016, 2026))
    tested = case.truth.time.values[case.test_times.values]
    assert tested.size == record["test"]["snapshots_used"] == 1 and set(_years(tested)) <= {2026, 2027, 2028}
    assert not np.isin(training.time.values, tested).any()
    assert case.training.thetao.sel(time=tested).isnull().all()
    given = bench.profiles_at_test_times(case)
    assert given.sizes["profile"] > 0 and np.isin(given.time.values, tested).all()
    assert record["train"]["snapshots_available"] == 732 and record["test"]["snapshots_available"] == 109


def test_every_method_is_scored_on_the_same_unobserved_columns(experiment):
    _, _, _, case, table, _ = experiment
    assert set(table.method) == set(METHODS)
    points = table[(table.metric == "points") & (table["columns"] == "unobserved")]
    per_depth = points.pivot_table(index="depth", columns="method", values="value")
    tested = case.test_times.values
    observed = case.observations.x_mask.any("depth").values[tested]
    expected = int((~observed).sum())
    assert (per_depth.to_numpy() == expected).all()
    assert 0.03 < observed.mean() < 0.05  # 4 % of the columns of each snapshot
    observed_points = table[(table.metric == "points") & (table["columns"] == "observed")].value
    assert (observed_points == int(observed.sum())).all()


def test_a_silent_network_gives_back_the_ablation(experiment):
    bench, _, _, case, table, predictions = experiment
    tested = case.truth.time.values[case.test_times.values]
    guess = predictions["diffusion_guess"].thetao
    members = predictions["diffusion"].thetao_members
    for prediction in predictions.values():  # scored on the test snapshots alone
        np.testing.assert_array_equal(prediction.time.values, tested)
    assert guess.notnull().all()
    np.testing.assert_allclose(members.values, np.broadcast_to(guess.values, members.shape), atol=1e-4)
    bands = bench.band_scores(table, bench.BANDS)
    summary = bench.summarise(bands)
    assert list(summary) == ["0-100 m", "100-300 m", "300-1000 m", "1000-2000 m"]
    for band in summary.values():
        assert abs(band["network_gain_percent"]["rmse"]) < 0.1
        assert band["scores"]["diffusion"]["spread"] < 1e-4  # identical members
    spectra = bench.spectra(case, predictions)
    for band in spectra["bands"].values():
        np.testing.assert_allclose(band["diffusion_member_0"]["ratio"], band["diffusion_guess"]["ratio"], rtol=1e-3)
    assert min(spectra["wavelength_cells"]) == pytest.approx(2.0)


def test_the_ablation_beats_climatology_below_the_surface(experiment):
    _, _, _, _, table, _ = experiment
    rmse = table[(table.metric == "rmse") & (table["columns"] == "unobserved") & (table.depth >= 100)]
    by_method = rmse.pivot_table(index="depth", columns="method", values="value")
    assert (by_method["diffusion_guess"] < by_method["climatology"]).all()


def test_clouds_hide_the_asked_fraction_of_the_test_sst_and_none_of_the_training_sst(shared_data):
    path = shared_data / "qg_nature_run.nc"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    bench = _benchmark()
    plan = bench.Plan(densities=(DENSITY,), train_every=100, test_every=30, cloud_cover=0.3)
    _, sst, test, _ = bench.load(path, plan)
    hidden = sst.sst.isnull().mean(("latitude", "longitude")).values
    np.testing.assert_allclose(hidden[test.values], 0.3, atol=0.01)
    assert not hidden[~test.values].any()
    _, clear, _, _ = bench.load(path, bench.Plan(densities=(DENSITY,), train_every=100, test_every=30))
    kept = sst.sst.notnull()
    np.testing.assert_array_equal(sst.sst.values[kept.values], clear.sst.values[kept.values])  # same noise elsewhere
    cloud = bench.clouds((1, 64, 64), 0.3, 0, 35.0 + 0.14 * np.arange(64), -50.0 + 0.176 * np.arange(64))[0]
    assert cloud[:32].sum() not in (0, cloud.sum())  # clouds of a few cells' scale, not one block
    assert np.abs(np.diff(cloud.astype(int), axis=1)).sum() < 0.2 * cloud.size  # contiguous, not salt and pepper
