"""Observing-system simulation experiments: sample a truth, run methods, score them on what they never saw.

The recipe (:func:`osse` does all of it; :func:`osse_case` and :func:`score_case` do it in two steps):

1. **Observations**: profiles sampled from the truth at every time step with
   :func:`xdepthrecon.sample_profiles` (seeded, with measurement noise), gridded with
   :func:`xdepthrecon.grid_profiles`; the SST (an independent product) aligned with :func:`xdepthrecon.align_sst`.
2. **Split**: ``test_regions`` (latitude, longitude) and ``test_times`` are held out. The training cube is
   the truth with both removed (NaN in the test regions at every time, and everywhere at the test times).
   Observations and SST are given everywhere at every time, as a real observing system would.
3. **Methods**: every method is called as ``method(profiles=..., sst=..., grid=..., training=...)``
   with the sampled canonical profiles, the aligned SST (``sst(time, latitude, longitude)``), the grid
   (canonical coordinates and a boolean ``ocean``) and the training cube, and returns a reconstruction
   on the grid: ``thetao`` and, for a probabilistic method, ``thetao_std`` or a ``member`` dimension.
   The baselines of :mod:`xdepthrecon.baselines` have this signature (:func:`standard_baselines` lists
   them); they grid the profiles with their own ``window``, which should be the case's. The diffusion
   model plugs in as ``lambda profiles, sst, grid, training: xdepthrecon.reconstruct(grid, profiles, sst,
   model)`` (the grid's ``ocean`` says where to reconstruct, under SST gaps too).
4. **Scores**: :func:`xdepthrecon.evaluation.metrics.evaluate` at the test times (all times if none are held out),
   split into ``held_out`` and ``trained`` regions and into all / observed / unobserved columns, per depth.
   :func:`band_scores` pools the levels of depth bands.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.analysis.classical import Analysis
from xdepthrecon.baselines.analysis import classical_analysis
from xdepthrecon.baselines.climatology import climatology
from xdepthrecon.baselines.interpolation import interpolate
from xdepthrecon.baselines.optimal_interpolation import optimal_interpolation
from xdepthrecon.baselines.sst_regression import sst_regression
from xdepthrecon.io.cube import CANONICAL_DIMS, as_cube, is_undated
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.io.times import as_profile_times
from xdepthrecon.evaluation.bands import in_band
from xdepthrecon.evaluation.metrics import evaluate
from xdepthrecon.sampling import sample_profiles
from xdepthrecon.io.sst import align_sst

#: A method of an OSSE: keyword arguments profiles, sst, grid, training; returns a reconstruction.
Method = Callable[..., xr.Dataset]
#: Depth bands (m) of :func:`band_scores`: upper ocean, thermocline, intermediate.
BANDS: tuple[tuple[float, float], ...] = ((0.0, 100.0), (100.0, 300.0), (300.0, 1000.0))
#: Columns of the score tables.
SCORE_COLUMNS = ("method", "region", "columns", "depth", "metric", "value")


@dataclass(frozen=True)
class OSSECase:
    """Everything a method gets, and what it is scored against.

    Attributes
    ----------
    truth
        The truth cube.
    profiles
        The sampled canonical profiles.
    observations
        The profiles gridded on the truth's grid: ``x``, ``x_mask``.
    sst
        ``sst(time, latitude, longitude)`` on the grid.
    grid
        The canonical coordinates and ``ocean`` (boolean, the truth's valid cells).
    training
        The truth's ``thetao`` with the test regions and times removed (NaN).
    test_times
        Boolean ``(time,)``: the times scored.
    test_regions
        Boolean ``(latitude, longitude)``: the held-out regions (all False without any).
    info
        What was sampled: numbers of profiles, share of observed ocean columns, settings.
    """

    truth: xr.Dataset
    profiles: xr.Dataset
    observations: xr.Dataset
    sst: xr.Dataset
    grid: xr.Dataset
    training: xr.Dataset
    test_times: xr.DataArray
    test_regions: xr.DataArray
    info: dict[str, Any] = field(default_factory=dict)


def osse(
    truth: xr.Dataset,
    sst: xr.Dataset,
    methods: Mapping[str, Method],
    *,
    resolution: bool = False,
    fair: bool = False,
    **sampling: Any,
) -> pd.DataFrame:
    """Run an observing-system simulation and score every method (see the module description).

    Parameters
    ----------
    truth, sst
        As in :func:`osse_case`.
    methods
        Name -> method (see the module description), e.g. :func:`standard_baselines`.
    resolution
        Also score the effective resolution (wavenumber spectra; slower).
    fair
        Score ensembles with the fair CRPS (see :func:`xdepthrecon.evaluation.metrics.evaluate`).
    **sampling
        ``density``, ``per_tile``, ``fraction``, ``test_regions``, ``test_times``, ``noise``, ``seed``, ``depth_max``,
        ``window``: the sampling and the split, see :func:`osse_case`.

    Returns
    -------
    pandas.DataFrame
        Tidy scores with columns ``method``, ``region`` (``held_out``/``trained``, or ``all``),
        ``columns`` (``all``/``observed``/``unobserved``), ``depth``, ``metric``, ``value``;
        ``attrs`` hold the case's ``info`` and each method's run time in ``seconds``. Save with
        ``to_csv`` or ``to_json(orient="records")``.

    Examples
    --------
    >>> atlas, coads = xdepthrecon.open_sample("ocean_atlas"), xdepthrecon.open_sample("coads_sst")  # doctest: +SKIP
    >>> scores = osse(atlas, coads, standard_baselines(), density=0.9, test_times=[2, 5, 8, 11],
    ...               test_regions=[(20, 50, -60, -20)])  # doctest: +SKIP
    >>> band_scores(scores).query("metric == 'rmse'")  # doctest: +SKIP
    """
    return score_case(osse_case(truth, sst, **sampling), methods, resolution=resolution, fair=fair)


def osse_case(
    truth: xr.Dataset,
    sst: xr.Dataset,
    *,
    density: float | None = None,
    per_tile: float | None = None,
    fraction: float | None = None,
    test_regions: xr.DataArray | Sequence[tuple[float, float, float, float]] | None = None,
    test_times: xr.DataArray | Sequence[int] | None = None,
    noise: float = 0.01,
    seed: int = 0,
    depth_max: float | None = None,
    window: str = "7D",
) -> OSSECase:
    """Sample the observations and split the truth (steps 1 and 2 of :func:`osse`).

    Parameters
    ----------
    truth
        Canonical cube taken as the truth.
    sst
        An SST product, independent of the truth, in any layout :func:`xdepthrecon.align_sst` reads.
    density, per_tile, fraction, noise, seed, depth_max
        Sampling of the profiles, see :func:`xdepthrecon.sample_profiles`; ``noise`` in degC.
    test_regions
        Boolean ``(latitude, longitude)`` DataArray, True where held out, or boxes
        ``(south, north, west, east)`` in degrees (``west > east`` crosses the dateline).
    test_times
        Boolean ``(time,)`` DataArray, True where held out, or calendar months (1-12).
    window
        Time window of the gridding of the profiles.

    Raises
    ------
    ValueError
        When the truth has no dates (an undated cube): the seasonal baselines and the profiles' times need them.
    """
    truth = as_cube(truth)
    if is_undated(truth):
        raise ValueError("the truth has no date (an undated cube): an OSSE needs the time of year for the seasonal "
                         "baselines and the profiles' times; give it one, e.g. "
                         "truth.expand_dims(time=[np.datetime64('2020-07-01')]).")
    thetao = truth["thetao"]
    profiles = sample_profiles(truth, density=density, per_tile=per_tile, fraction=fraction, depth_max=depth_max,
                               noise=noise, seed=seed)
    observations = grid_profiles(profiles, like=truth, window=window)
    aligned = align_sst(sst, like=truth)
    coords = {d: truth[d].variable for d in CANONICAL_DIMS}
    grid = xr.Dataset({"ocean": thetao.notnull()}, coords=coords)
    regions = region_mask(test_regions, truth)
    times = time_mask(test_times, truth)
    training = thetao.where(~(regions | times)).to_dataset(name="thetao")
    if not training["thetao"].notnull().any():
        raise ValueError("the test regions and times hold out the whole truth; leave some of it for training.")
    surface = thetao.isel(depth=0).notnull()
    observed = observations["x_mask"].any("depth")
    info = {
        "profiles": int(profiles.sizes["profile"]),
        "profiles_per_time_step": round(profiles.sizes["profile"] / thetao.sizes["time"], 2),
        "observed_column_fraction": round(float(observed.sum() / surface.sum()), 5),
        "density_per_1e6_km2": density, "per_tile": per_tile, "fraction": fraction, "noise_degC": noise, "seed": seed,
        "depth_max": depth_max, "window": window,
        "test_time_steps": int(times.sum()), "time_steps": int(times.size),
        "test_region_ocean_fraction": round(float((surface & regions).sum() / surface.sum()), 5),
    }
    return OSSECase(truth, profiles, observations, aligned, grid, training, times, regions, info)


def score_case(case: OSSECase, methods: Mapping[str, Method], resolution: bool = False, *,
               fair: bool = False) -> pd.DataFrame:
    """Run each method on a case and score it (steps 3 and 4 of :func:`osse`); ``resolution`` and ``fair`` as
    there."""
    labels = None
    if bool(case.test_regions.any()):
        labels = xr.DataArray(np.where(case.test_regions.values, "held_out", "trained"),
                              dims=("latitude", "longitude"), coords=case.test_regions.coords, name="region")
    scored = case.test_times if bool(case.test_times.any()) else None
    tables, seconds = [], {}
    for name, method in methods.items():
        started = _time.perf_counter()
        prediction = method(profiles=case.profiles, sst=case.sst, grid=case.grid, training=case.training)
        seconds[name] = round(_time.perf_counter() - started, 3)
        _check_prediction(name, prediction, case.grid)
        scores = evaluate(prediction, case.truth, mask=scored, observed=case.observations["x_mask"],
                          by=labels, fair=fair, resolution=resolution)
        tables.append(tidy_scores(scores, name))
    table = pd.concat(tables, ignore_index=True)
    table.attrs = {**case.info, "seconds": seconds}
    return table


def tidy_scores(scores: xr.Dataset, method: str) -> pd.DataFrame:
    """One row per region, columns, depth and metric of an :func:`~xdepthrecon.evaluation.metrics.evaluate` result."""
    rows = []
    for metric, values in scores.data_vars.items():
        frame = values.to_dataframe(name="value").reset_index()
        frame["metric"] = metric
        rows.append(frame)
    table = pd.concat(rows, ignore_index=True)
    for name in ("region", "columns"):
        if name not in table:
            table[name] = "all"
    table["method"] = method
    return table[list(SCORE_COLUMNS)]


def band_scores(table: pd.DataFrame, bands: Sequence[tuple[float, float]] = BANDS) -> pd.DataFrame:
    """Pool the per-depth scores of :func:`osse` over depth bands.

    Every (point, level) pair of a band counts once: the mean scores (``mae``, ``bias``, ``crps``)
    and squared ones (``rmse``, ``spread``) are averaged over the band's levels weighted by ``points``;
    ``spread_skill`` is the band's spread over its rmse (with the ensemble-size factor the per-depth
    ratios carry); ``points`` is summed. ``correlation`` and ``effective_resolution`` do not pool and
    are left out. A band holds the levels ``top <= depth < bottom`` (``<=`` for the last band).

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``region``, ``columns``, ``band`` (e.g. ``"0-100 m"``), ``metric``, ``value``.
    """
    keys = ["method", "region", "columns", "depth"]
    wide = table.pivot_table(index=keys, columns="metric", values="value", aggfunc="first").reset_index()
    frames = []
    for i, (top, bottom) in enumerate(bands):
        inside = in_band(wide["depth"], (top, bottom), i == len(bands) - 1)
        part = wide[inside & (wide["points"] > 0)]
        if part.empty:
            continue
        for key, group in part.groupby(["method", "region", "columns"]):
            frames.append(_pool(group, dict(zip(("method", "region", "columns"), key)), f"{top:g}-{bottom:g} m"))
    return pd.DataFrame([row for frame in frames for row in frame],
                        columns=["method", "region", "columns", "band", "metric", "value"])


def standard_baselines(window: str = "7D", *, analysis: Analysis | None = None,
                       **oi_options: Any) -> dict[str, Method]:
    """The baselines a user would pick instead, under the names the benchmark tables use.

    ``climatology``, ``nearest``, ``linear``, ``inverse_distance``, ``optimal_interpolation``,
    ``sst_regression`` (background only), ``sst_regression_oi`` and ``classical_analysis`` (fitted to the
    case's training cube, or ``analysis`` when given). ``window`` is the gridding window of the profiles
    (use the case's); ``oi_options`` go to every optimal interpolation.
    """
    return {
        "classical_analysis": partial(classical_analysis, window=window, analysis=analysis),
        "climatology": climatology,
        "nearest": partial(interpolate, method="nearest", window=window),
        "linear": partial(interpolate, method="linear", window=window),
        "inverse_distance": partial(interpolate, method="inverse_distance", window=window),
        "optimal_interpolation": partial(optimal_interpolation, window=window, **oi_options),
        "sst_regression": partial(sst_regression, analysis=False),
        "sst_regression_oi": partial(sst_regression, window=window, **oi_options),
    }


def region_mask(regions: xr.DataArray | Sequence[tuple[float, float, float, float]] | None,
                like: xr.Dataset) -> xr.DataArray:
    """Boolean ``(latitude, longitude)``, True in the given boxes ``(south, north, west, east)`` or mask."""
    lat, lon = like["latitude"], like["longitude"]
    if regions is None:
        return xr.zeros_like(lat * lon, dtype=bool)
    if isinstance(regions, xr.DataArray):
        if regions.dtype != bool or set(regions.dims) != {"latitude", "longitude"}:
            raise ValueError("test_regions must be a boolean (latitude, longitude) DataArray or a list of boxes "
                             "(south, north, west, east).")
        return regions.broadcast_like(lat * lon).transpose("latitude", "longitude").fillna(False).astype(bool)
    mask = xr.zeros_like(lat * lon, dtype=bool)
    for box in regions:
        if len(box) != 4:
            raise ValueError(f"region {box!r} is not a box (south, north, west, east) in degrees.")
        south, north, west, east = map(float, box)
        inside_lon = (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)
        mask = mask | ((lat >= south) & (lat <= north) & inside_lon)
    return mask.transpose("latitude", "longitude")


def time_mask(times: xr.DataArray | Sequence[int] | None, like: xr.Dataset) -> xr.DataArray:
    """Boolean ``(time,)``, True at the given calendar months (1-12) or where the given mask is."""
    index = like["time"]
    if times is None:
        return xr.zeros_like(index, dtype=bool)
    if isinstance(times, xr.DataArray):
        if times.dtype != bool or times.dims != ("time",):
            raise ValueError("test_times must be a boolean (time,) DataArray or a list of calendar months 1-12.")
        return times.reindex_like(index, fill_value=False)
    months = np.asarray(list(times))
    if months.size and (months.min() < 1 or months.max() > 12):
        raise ValueError(f"test_times {list(months)} are not calendar months 1-12.")
    dates, _ = as_profile_times(np.asarray(index.values))
    month = dates.astype("datetime64[M]").astype("int64") % 12 + 1
    return xr.DataArray(np.isin(month, months), dims="time", coords={"time": index})


def _pool(group: pd.DataFrame, key: dict[str, Any], band: str) -> list[dict[str, Any]]:
    weight = group["points"].to_numpy(dtype="float64")
    total = weight.sum()

    def mean(column: str) -> float:
        return float((group[column] * weight).sum() / total)

    pooled = {"points": total, "rmse": float(np.sqrt((group["rmse"] ** 2 * weight).sum() / total))}
    for name in ("mae", "bias", "crps"):
        if name in group and group[name].notna().all():
            pooled[name] = mean(name)
    if "spread" in group and group["spread"].notna().all():
        pooled["spread"] = float(np.sqrt((group["spread"] ** 2 * weight).sum() / total))
        factor = float((group["spread_skill"] * group["rmse"] / group["spread"]).median())
        pooled["spread_skill"] = factor * pooled["spread"] / pooled["rmse"]
    return [{**key, "band": band, "metric": name, "value": value} for name, value in pooled.items()]


def _check_prediction(name: str, prediction: xr.Dataset, grid: xr.Dataset) -> None:
    if not isinstance(prediction, xr.Dataset) or "thetao" not in prediction:
        raise TypeError(f"method {name!r} returned {type(prediction).__name__}; a method must return a Dataset "
                        "with thetao (and optionally thetao_std or a member dimension) on the grid.")
    for dim in CANONICAL_DIMS:
        if dim not in prediction["thetao"].dims or prediction.sizes[dim] != grid.sizes[dim]:
            raise ValueError(f"method {name!r} returned thetao with dims {dict(prediction['thetao'].sizes)}; it must "
                             f"be on the grid {dict(grid.sizes)}.")
