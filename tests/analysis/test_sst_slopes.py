"""The background's SST slopes that vary with the season: chosen by cross-validation where the data hold them,
predicting years the fit did not see, and absent from backgrounds saved before them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from xdepthrecon.analysis.background import SeasonalBackground, cross_validated_background
from xdepthrecon.analysis.sst_slopes import SlopeChoice
from xdepthrecon.stats.seasonal import seasonal_design


def _mixed_layer(years: int = 6, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    """Monthly temperature (time, channel, lat, lon) on 15-degree cells whose first level follows the SST
    anomaly all year and whose second follows it fully in winter and hardly in summer (a mixed layer that
    deepens in winter), each with noise; and the SST."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-01-16", periods=12 * years, freq="MS") + pd.Timedelta(days=14)
    lat, lon = np.linspace(-55.0, 55.0, 12), -180.0 + (np.arange(24) + 0.5) * 15.0
    winter = seasonal_design(time.values, 1)[:, 1]  # cos of the phase: 1 in January, -1 in July
    anomaly = rng.normal(size=(time.size, 12, 24))
    climate = 15.0 + 5.0 * np.cos(np.deg2rad(lat))[:, None] + 0 * lon
    slopes = np.stack([np.full(time.size, 0.8), 0.55 + 0.45 * winter], axis=1)  # (time, channel)
    temperature = (climate[None, None] + slopes[..., None, None] * anomaly[:, None]
                   + 0.05 * rng.normal(size=(time.size, 2, 12, 24)))
    coords = {"time": time, "latitude": lat, "longitude": lon}
    field = xr.DataArray(temperature, dims=("time", "channel", "latitude", "longitude"), coords=coords)
    return field, xr.DataArray(climate[None] + anomaly, dims=("time", "latitude", "longitude"), coords=coords)


def _rmse(background: SeasonalBackground, field: xr.DataArray, sst: xr.DataArray) -> np.ndarray:
    predicted = background.at(field.time.values, field.latitude.values, field.longitude.values, sst.values).numpy()
    return np.sqrt(np.mean((predicted - field.values) ** 2, axis=(0, 2, 3)))


def test_a_level_whose_slope_follows_the_seasons_gets_seasonal_slopes_and_predicts_an_unseen_year():
    field, sst = _mixed_layer()
    train, test = slice(0, 60), slice(60, None)
    seasonal = SeasonalBackground.fit(field.isel(time=train), sst.isel(time=train), slope_harmonics=1)
    constant = SeasonalBackground.fit(field.isel(time=train), sst.isel(time=train))
    assert seasonal.choice.seasonal[1] and not any(constant.choice.seasonal)
    np.testing.assert_allclose(seasonal.slope[0, 1].numpy(), 0.55, atol=0.02)
    np.testing.assert_allclose(seasonal.seasonal_slope[:, 0, 1].numpy(), [[0.45] * 12, [0.0] * 12], atol=0.02)
    held_out = _rmse(seasonal, field.isel(time=test), sst.isel(time=test))
    assert held_out[1] < 0.1 < 0.3 < _rmse(constant, field.isel(time=test), sst.isel(time=test))[1]
    assert held_out[0] < 0.06  # the level with one slope all year loses nothing


def test_the_cross_validated_folds_share_the_seasonal_choice_and_a_wrong_choice_is_refused():
    field, sst = _mixed_layer(years=3)
    choice = SlopeChoice([np.inf, np.inf], [False, True])
    crossed = cross_validated_background(field, sst, slope_harmonics=1, choice=choice, over="time", folds=3)
    constant = cross_validated_background(field, sst, over="time", folds=3)
    errors = [np.sqrt(np.mean((b.values - field.values)[:, 1] ** 2)) for b in (crossed, constant)]
    assert errors[0] < 0.5 * errors[1]
    with pytest.raises(ValueError, match="seasonal slopes need slope_harmonics > 0"):
        SeasonalBackground.fit(field, sst, choice=choice)
    with pytest.raises(ValueError, match="one ridge and one seasonal flag per channel"):
        SeasonalBackground.fit(field, sst, slope_harmonics=1, choice=SlopeChoice([np.inf], [True]))


def test_a_background_saved_before_the_seasonal_slopes_loads_with_constant_ones():
    field, sst = _mixed_layer(years=2)
    fitted = SeasonalBackground.fit(field, sst)
    state = {k: v for k, v in fitted.state_dict().items() if k not in ("seasonal_slope", "seasonal")}
    old = SeasonalBackground(**{k: v for k, v in fitted.config.items() if k != "slope_harmonics"})
    old.load_state_dict(state)
    assert not any(old.choice.seasonal) and old.seasonal_slope.shape[0] == 0
    times, lat, lon = field.time.values, field.latitude.values, field.longitude.values
    torch.testing.assert_close(old.at(times, lat, lon, sst.values), fitted.at(times, lat, lon, sst.values))
