"""The main job on the bundled real data: ``python -m xdepthrecon demo``.

Today it opens the bundled samples, checks them against each other and writes a report folder
with a summary figure and a Markdown summary. Later issues grow it into the full reconstruction
demo (train, simulate profiles, reconstruct, score against baselines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr


def _weighted_mean(field: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """Area-weighted (cos latitude) mean over ``dims``, skipping NaN."""
    return field.weighted(np.cos(np.deg2rad(field.latitude))).mean(dims)


def summarize(cube: xr.Dataset, sst: xr.Dataset) -> dict[str, object]:
    """Numbers that describe the sample cube and how the independent SST compares with its surface.

    Parameters
    ----------
    cube
        Canonical temperature cube (see :func:`xdepthrecon.standardize`).
    sst
        Canonical SST field on a grid that may differ from the cube's (see
        :func:`xdepthrecon.standardize_surface`); it is interpolated linearly onto the cube grid.

    Returns
    -------
    dict
        Sizes, depth levels, ocean fraction per level, area-weighted mean temperature per level
        and the area-weighted RMSE and bias (degC) of the SST against the cube's top level.
    """
    thetao = cube.thetao
    ocean_fraction = thetao.notnull().mean(("time", "latitude", "longitude"))
    mean_profile = _weighted_mean(thetao, ("time", "latitude", "longitude"))
    months = min(cube.sizes["time"], sst.sizes["time"])
    on_grid = sst.sst.isel(time=slice(months)).interp(latitude=cube.latitude, longitude=cube.longitude)
    surface = thetao.isel(time=slice(months), depth=0, drop=True)
    difference = on_grid.drop_vars("time") - surface.drop_vars("time")
    rmse = float(np.sqrt(_weighted_mean(difference**2, difference.dims)))
    bias = float(_weighted_mean(difference, difference.dims))
    points = int(difference.notnull().sum())
    return {
        "sizes": dict(thetao.sizes),
        "depth_m": cube.depth.values.tolist(),
        "ocean_fraction": ocean_fraction.values.round(4).tolist(),
        "mean_temperature_degC": mean_profile.values.round(3).tolist(),
        "sst_vs_surface_rmse_degC": round(rmse, 3),
        "sst_vs_surface_bias_degC": round(bias, 3),
        "sst_vs_surface_points": points,
    }


def plot_summary(cube: xr.Dataset, path: Path) -> Path:
    """Write a three-panel PNG: first-month surface map, zonal-mean section, global-mean profile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xdepthrecon.plot import plot_map, plot_profile, plot_section

    fig, (ax_map, ax_section, ax_profile) = plt.subplots(
        1, 3, figsize=(16, 4.6), layout="constrained", gridspec_kw={"width_ratios": [2.2, 1.6, 0.8]})
    plot_map(cube, depth=float(cube.depth[0]), ax=ax_map)
    plot_section(cube.mean(("time", "longitude")), ax=ax_section).set_title("zonal and annual mean")
    everywhere = ("time", "latitude", "longitude")
    area_mean = xr.Dataset({"thetao": _weighted_mean(cube.thetao, everywhere),
                            "thetao_std": cube.thetao.std(everywhere)})
    plot_profile(area_mean, ax=ax_profile, label="area-weighted mean").set_title("global profile")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_demo(out: str | Path = "report") -> Path:
    """Run the demo on the bundled samples and write ``summary.png`` and ``summary.md`` into ``out``.

    Parameters
    ----------
    out
        Report folder (created if missing).

    Returns
    -------
    pathlib.Path
        The report folder.
    """
    from xdepthrecon.datasets import open_sample

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cube = open_sample("ocean_atlas")
    sst = open_sample("coads_sst")
    numbers = summarize(cube, sst)
    plot_summary(cube, out / "summary.png")
    rows = "\n".join(
        f"| {d:g} | {f:.3f} | {t:.2f} |"
        for d, f, t in zip(numbers["depth_m"], numbers["ocean_fraction"], numbers["mean_temperature_degC"])
    )
    text = (
        "# xdepthrecon demo: the bundled sample data\n\n"
        f"Monthly temperature atlas, sizes {numbers['sizes']}.\n\n"
        f"COADS SST against the atlas surface (independent sources, interpolated to the atlas grid): "
        f"RMSE {numbers['sst_vs_surface_rmse_degC']} degC, bias {numbers['sst_vs_surface_bias_degC']} degC "
        f"over {numbers['sst_vs_surface_points']} points.\n\n"
        "| depth (m) | ocean fraction | area-weighted mean (degC) |\n| --- | --- | --- |\n"
        f"{rows}\n\n![summary](summary.png)\n"
    )
    (out / "summary.md").write_text(text)
    print(text)
    return out
