"""The error model: the ratio of the squared validation error to the predicted variance, per level and bin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xdepthrecon
from xdepthrecon.analysis.background import SeasonalBackground
from xdepthrecon.analysis.classical import Analysis, Guess, calibrated_variance
from xdepthrecon.analysis.departures import DepartureAnalysis
from xdepthrecon.analysis.errors import MIN_GAP_COLUMNS, ErrorModel


def _as_field(values: list[list[float]]) -> torch.Tensor:
    """``values[level][cell]`` as a predicted variance (1, levels, 1, cells)."""
    return torch.tensor(values, dtype=torch.float32)[None, :, None, :]


def test_the_expected_variance_is_the_measured_ratio_times_the_prediction_level_by_level():
    rng = np.random.default_rng(1)
    predicted = rng.uniform(0.1, 2.0, (4000, 2)) * np.array([1.0, 0.1])  # per level, different ranges
    model = ErrorModel.fit(predicted, predicted * np.array([1.5, 0.5]), bins=6)  # errors exactly r x prediction
    assert model.ratio.shape == (6, 2) and model.edges.shape == (5, 2)
    torch.testing.assert_close(model.ratio, torch.tensor([[1.5, 0.5]]).expand(6, 2))
    variance = _as_field([[0.05, 0.2, 1.8, 7.0], [0.005, 0.02, 0.18, 0.7]])  # in range, and beyond it
    torch.testing.assert_close(model.expected_variance(variance), variance * torch.tensor([1.5, 0.5])[:, None, None])
    noisy = ErrorModel.fit(predicted, predicted * np.array([1.5, 0.5]) * rng.standard_normal(predicted.shape) ** 2,
                           bins=6)  # a chi-squared error: the ratio is measured within its sampling error
    torch.testing.assert_close(noisy.ratio, torch.tensor([[1.5, 0.5]]).expand(6, 2), rtol=0.25, atol=0)


def test_each_bin_of_the_prediction_has_its_own_ratio():
    predicted = np.linspace(1.0, 2.0, 1000)[:, None]  # the median (two bins' edge) is 1.5
    model = ErrorModel.fit(predicted, predicted * np.where(predicted > 1.5, 2.0, 0.5), bins=2)
    torch.testing.assert_close(model.edges, torch.tensor([[1.5]]))
    torch.testing.assert_close(model.ratio, torch.tensor([[0.5], [2.0]]))
    expected = model.expected_variance(_as_field([[1.2, 1.8, 10.0]]))
    torch.testing.assert_close(expected, _as_field([[0.6, 3.6, 20.0]]))  # above the top edge: the top bin's


def test_levels_without_errors_and_nan_take_the_other_levels_ratio():
    predicted = np.ones((50, 2))
    squared = np.full((50, 2), np.nan)  # level 1 below the bottom in every column
    squared[:, 0] = 3.0
    squared[:10, 0] = np.nan  # and level 0 in some
    predicted[10:20, 0] = np.nan
    model = ErrorModel.fit(predicted, squared, bins=3)
    torch.testing.assert_close(model.ratio, torch.full((3, 2), 3.0))


def test_bad_input_is_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"one predicted variance per column and level .* \(3,\) and \(4, 2\)"):
        ErrorModel.fit(np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(0, 2\) and \(0, 2\)"):
        ErrorModel.fit(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="one predicted variance per column and level"):
        ErrorModel.fit(np.zeros(4), np.zeros(4))
    model = ErrorModel.fit(np.ones((10, 2)), np.ones((10, 2)), bins=2)
    with pytest.raises(ValueError, match="the error model has 2 levels; the predicted variance has 3"):
        model.expected_variance(torch.ones(1, 3, 2, 2))


def test_the_cells_under_sst_gaps_get_their_own_ratios_when_calibration_saw_enough_of_them(tmp_path):
    rng = np.random.default_rng(2)
    predicted = rng.uniform(0.1, 1.0, (3000, 2))
    gaps = rng.random(3000) < 0.3
    squared = predicted * np.where(gaps[:, None], [2.5, 4.0], [1.0, 0.5])  # worse under the clouds
    model = ErrorModel.fit(predicted, squared, bins=4, gaps=gaps)
    torch.testing.assert_close(model.ratio, torch.tensor([[1.0, 0.5]]).expand(4, 2))
    torch.testing.assert_close(model.under_gaps.ratio, torch.tensor([[2.5, 4.0]]).expand(4, 2))
    variance = torch.full((1, 2, 2, 3), 0.5)
    under = torch.tensor([[[True, False, False], [False, False, True]]])
    expected = torch.where(under[:, None], torch.tensor([1.25, 2.0])[:, None, None],
                           torch.tensor([0.5, 0.25])[:, None, None])
    torch.testing.assert_close(model.expected_variance(variance, under), expected)
    torch.testing.assert_close(model.expected_variance(variance), expected[:, :, :1, 1:2].expand_as(expected))
    analysis = _analysis()  # saved and read back with its holder, the second model too
    analysis.error_model = analysis.covered_error_model = model
    loaded = xdepthrecon.load(analysis.save(tmp_path / "gaps.safetensors"))
    assert loaded.error_model.config == {"levels": 2, "bins": 4, "gaps": True}
    coverage = torch.tensor([[True, True, False], [False, False, False]])
    torch.testing.assert_close(calibrated_variance(variance, loaded.error_model, loaded.covered_error_model,
                                                   coverage, gaps=under), expected, rtol=0, atol=0)
    few = ErrorModel.fit(predicted, squared, bins=4, gaps=np.arange(3000) < 4 * MIN_GAP_COLUMNS - 1)
    assert few.under_gaps is None  # too few columns under gaps: one model for all, as without gap flags
    torch.testing.assert_close(few.ratio, ErrorModel.fit(predicted, squared, bins=4).ratio)
    with pytest.raises(ValueError, match=r"one gap flag per column, got \(5,\) for \(3000, 2\)"):
        ErrorModel.fit(predicted, squared, gaps=np.zeros(5, dtype=bool))


def _analysis(levels: int = 2) -> Analysis:
    background = SeasonalBackground(1, levels, 2, 3)
    return Analysis(background, DepartureAnalysis(levels))


def test_the_covered_error_model_applies_where_the_training_data_reached():
    predicted = np.linspace(0.1, 1.0, 40)[:, None].repeat(2, axis=1)
    new_region = ErrorModel.fit(predicted, 4.0 * predicted, bins=4)
    covered = ErrorModel.fit(predicted, predicted, bins=4)
    variance = torch.full((1, 2, 2, 3), 0.5)
    where = torch.tensor([[True, False, False], [False, False, True]])
    out = calibrated_variance(variance, new_region, covered, where)
    torch.testing.assert_close(out, torch.where(where, 0.5, 2.0).expand(1, 2, 2, 3))
    torch.testing.assert_close(calibrated_variance(variance, new_region), torch.full((1, 2, 2, 3), 2.0))
    assert calibrated_variance(variance, None, covered, where) is variance  # no error model: the OI variance
    analysis = _analysis()
    analysis.error_model, analysis.covered_error_model = new_region, covered
    torch.testing.assert_close(analysis.error_variance(Guess(torch.zeros(1, 2, 2, 3), variance), where), out)
    with pytest.raises(ValueError, match="with_variance=True"):
        analysis.error_variance(Guess(torch.zeros(1, 2, 2, 3), None))


def test_the_error_models_survive_save_and_load_with_their_analysis(tmp_path):
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0.1, 1.0, (200, 2))
    analysis = _analysis()
    analysis.error_model = ErrorModel.fit(predicted, 3.0 * predicted**2, bins=4)
    analysis.covered_error_model = ErrorModel.fit(predicted, 0.5 * predicted, bins=5)
    loaded = xdepthrecon.load(analysis.save(tmp_path / "analysis.safetensors"))
    assert loaded.config == analysis.config
    assert loaded.covered_error_model.config == {"levels": 2, "bins": 5, "gaps": False}
    for name in ("error_model", "covered_error_model"):
        for buffer in ("ratio", "edges"):
            torch.testing.assert_close(getattr(getattr(loaded, name), buffer), getattr(getattr(analysis, name), buffer),
                                       rtol=0, atol=0)
    guess = Guess(torch.zeros(1, 2, 2, 3), torch.rand(1, 2, 2, 3, generator=torch.Generator().manual_seed(0)))
    where = torch.tensor([[True, False, False], [False, True, True]])
    torch.testing.assert_close(loaded.error_variance(guess, where), analysis.error_variance(guess, where), rtol=0,
                               atol=0)
    alone = _analysis()
    assert xdepthrecon.load(alone.save(tmp_path / "plain.safetensors")).error_model is None


def test_the_expected_error_has_no_steps_at_the_bin_edges():
    rng = np.random.default_rng(4)
    predicted = rng.uniform(0.1, 1.0, (4000, 1))
    squared = predicted * (1.0 + 3.0 * (predicted > 0.55)) * rng.standard_normal(predicted.shape) ** 2  # a jump
    model = ErrorModel.fit(predicted, squared, bins=8)
    sweep = torch.linspace(0.05, 1.2, 2000).reshape(1, 1, 1, -1)
    expected = model.expected_variance(sweep)[0, 0, 0]
    ratio = expected / sweep[0, 0, 0]
    assert float(ratio.diff().abs().max()) < 0.05  # continuous: no step between neighbouring values
    assert float(ratio[sweep[0, 0, 0] < 0.2].mean()) == pytest.approx(1.0, rel=0.2)  # each side's ratio holds
    assert float(ratio[sweep[0, 0, 0] > 0.95].mean()) == pytest.approx(4.0, rel=0.2)
    torch.testing.assert_close(ratio[:5], ratio[:1].expand(5))  # flat below the first bin's centre
