"""Plots render to PNG with the Agg backend, with labelled units, depth downward and the right pieces."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from tests.conftest import glorys_like  # noqa: E402
from xdepthrecon.evaluation.metrics import evaluate  # noqa: E402
from xdepthrecon.evaluation.plot import plot_map, plot_profile, plot_scores, plot_section  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def ensemble(cube: xr.Dataset, members: int = 4) -> xr.Dataset:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.3, (members, *cube.thetao.shape))
    return xr.Dataset({"thetao_members": cube.thetao + xr.DataArray(noise, dims=("member", *cube.thetao.dims))})


def colorbar_label(ax) -> str:
    return ax.figure.axes[-1].get_ylabel()


def saved(ax, tmp_path, name: str) -> int:
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path, dpi=60)
    return path.stat().st_size


def test_map_of_temperature_with_observations(cube, tmp_path):
    x_mask = xr.zeros_like(cube.thetao, dtype=bool)
    x_mask[0, :, 5, [3, 9]] = True
    ax = plot_map(cube, depth=10.0, observations=x_mask)
    assert ax.get_xlabel() == "longitude (degrees_east)" and ax.get_ylabel() == "latitude (degrees_north)"
    assert colorbar_label(ax) == "temperature (degC)"
    assert "10.38 m" in ax.get_title() and "2020-01-01" in ax.get_title()
    assert ax.collections[0].get_cmap().name == "RdYlBu_r"
    assert len(ax.collections[1].get_offsets()) == 2  # the two observed cells
    assert saved(ax, tmp_path, "map") > 2000


def test_map_of_profile_positions(cube):
    profiles = xr.Dataset(coords={"latitude": ("profile", [0.0, 10.0, 20.0]),
                                  "longitude": ("profile", [-100.0, 0.0, 100.0])})
    ax = plot_map(cube, depth=0, observations=profiles)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), [[-100, 0], [0, 10], [100, 20]])


def test_error_map_is_diverging_and_centred_on_zero(cube, tmp_path):
    prediction = cube.assign(thetao=cube.thetao + 0.5 * np.sin(np.arange(cube.sizes["longitude"])))
    ax = plot_map(prediction, depth=0, time=1, kind="error", truth=cube)
    mesh = ax.collections[0]
    assert mesh.get_cmap().name == "RdBu_r"
    assert mesh.norm.vmin == -mesh.norm.vmax > -1
    assert colorbar_label(ax) == "prediction - truth (degC)"
    assert saved(ax, tmp_path, "error") > 2000
    with pytest.raises(ValueError, match="needs the truth"):
        plot_map(prediction, depth=0, kind="error")


def test_spread_map_from_members_and_std(cube):
    ax = plot_map(ensemble(cube), depth=0, kind="spread")
    assert colorbar_label(ax) == "ensemble spread, std (degC)"
    values = ax.collections[0].get_array()
    assert 0.05 < float(np.ma.median(values)) < 0.6
    with pytest.raises(ValueError, match="thetao_std or ensemble members"):
        plot_map(cube, depth=0, kind="spread")


def test_land_shows_as_grey_background(cube):
    ax = plot_map(cube, depth=0)
    assert ax.get_facecolor()[:3] == pytest.approx((0.75, 0.75, 0.75))
    assert np.ma.getmaskarray(ax.collections[0].get_array()).any()  # the land block is masked


@pytest.mark.parametrize(("where", "xlabel"), [({"latitude": 20.0}, "longitude (degrees_east)"),
                                               ({"longitude": 45.0}, "latitude (degrees_north)")])
def test_sections_put_depth_downward(cube, tmp_path, where, xlabel):
    ax = plot_section(cube, **where)
    bottom, top = ax.get_ylim()
    assert bottom > top  # inverted: depth grows downward
    assert ax.get_ylabel() == "depth (m)" and ax.get_xlabel() == xlabel
    assert colorbar_label(ax) == "temperature (degC)"
    assert saved(ax, tmp_path, "section") > 2000


def test_section_of_a_zonal_mean_and_bad_requests(cube):
    ax = plot_section(cube.mean(("time", "longitude")))
    assert ax.get_xlabel() == "latitude (degrees_north)"
    with pytest.raises(ValueError, match="not both"):
        plot_section(cube, latitude=0, longitude=0)
    with pytest.raises(ValueError, match="pass latitude"):
        plot_section(cube)


def test_profile_with_spread_truth_and_observations(cube, tmp_path):
    profiles = xr.Dataset(
        {"temperature": (("profile", "level"), [[20.0, 15.0], [1.0, 2.0]])},
        coords={"depth": (("profile", "level"), [[5.0, 50.0], [5.0, 50.0]]),
                "latitude": ("profile", [25.0, -40.0]), "longitude": ("profile", [10.0, 10.0])},
    )
    ax = plot_profile(ensemble(cube), latitude=25.0, longitude=10.0, truth=cube, observations=profiles)
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
    assert ax.get_xlabel() == "temperature (degC)" and ax.get_ylabel() == "depth (m)"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["prediction", "truth", "observations"]
    np.testing.assert_allclose(ax.get_lines()[2].get_xdata(), [20.0, 15.0])  # only the profile in this cell
    assert len(ax.collections) == 1  # the shaded +- 1 std band
    assert saved(ax, tmp_path, "profile") > 2000


def test_profile_band_from_std_and_none_without_it(cube):
    gaussian = cube.assign(thetao_std=cube.thetao * 0 + 0.4)
    ax = plot_profile(gaussian, latitude=25.0, longitude=10.0)
    band = ax.collections[0].get_paths()[0].vertices[:, 0]
    column = cube.thetao.isel(time=0).sel(latitude=25.0, longitude=10.0, method="nearest").dropna("depth")
    assert np.nanmax(band) == pytest.approx(float(column.max()) + 0.4, rel=1e-5)
    assert len(plot_profile(cube, latitude=25.0, longitude=10.0).collections) == 0
    with pytest.raises(ValueError, match="pass latitude"):
        plot_profile(cube)


def test_score_plot_has_one_line_per_method(cube, tmp_path):
    observed = cube.thetao.isel(depth=0).notnull() & (cube.longitude > 0)
    scores = {
        "offset": evaluate(cube.thetao + 0.2, cube, observed=observed),
        "ensemble": evaluate(ensemble(cube), cube, observed=observed),
        "smooth": evaluate(cube.thetao.rolling(longitude=3, center=True).mean(), cube, observed=observed),
    }
    ax = plot_scores(scores, columns="unobserved")
    assert [line.get_label() for line in ax.get_lines()] == list(scores)
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
    assert ax.get_xlabel() == "rmse (degC)" and ax.get_ylabel() == "depth (m)"
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), 0.2, rtol=1e-5)
    assert saved(ax, tmp_path, "scores") > 2000
    crps = plot_scores({"ensemble": scores["ensemble"]}, metric="spread_skill")
    assert crps.get_xlabel() == "spread_skill (1)" and len(crps.get_lines()) == 2  # with the reference at 1


def test_score_plot_from_tidy_tables():
    depth = [0.0, 10.0, 100.0]
    long = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "depth": depth * 2, "metric": "rmse",
                         "value": [1.0, 2.0, 3.0, 0.5, 0.6, 0.7]})
    long = pd.concat([long, long.assign(metric="mae", value=9.0)])
    ax = plot_scores(long)
    assert len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[1].get_xdata(), [0.5, 0.6, 0.7])
    wide = pd.DataFrame({"method": ["a"] * 3, "depth": depth, "rmse": [1.0, 2.0, 3.0]})
    assert len(plot_scores(wide).get_lines()) == 1
    with pytest.raises(ValueError, match="several rows per method and depth"):
        plot_scores(pd.concat([wide, wide]))


def test_score_plot_asks_to_select_extra_dims(cube):
    by_time = evaluate(cube.thetao + 0.1, cube, by="time")
    with pytest.raises(ValueError, match="select one value"):
        plot_scores({"x": by_time})
    assert len(plot_scores({"x": by_time.isel(time=0)}).get_lines()) == 1

