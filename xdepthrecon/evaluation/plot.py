"""Plots of cubes, reconstructions and their scores: maps, sections, profiles, scores by depth.

Plain matplotlib functions (the ``depthrecon`` accessor delegates to them). Each draws on ``ax``,
or on a new figure, and returns the Axes; the colour bar is ``ax.figure.axes[-1]``. Depth grows
downward, axes and colour bars carry units, and land or sea floor (NaN) shows as the grey axes
background. Colour maps: ``RdYlBu_r`` for temperature, ``RdBu_r`` centred on 0 for errors,
``viridis`` for ensemble spread. Nothing here picks a backend: set ``MPLBACKEND=Agg`` (or
``matplotlib.use("Agg")``) to draw without a display.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.evaluation._score_lines import score_lines
from xdepthrecon.evaluation.metrics import LONG_NAMES
from xdepthrecon.evaluation.predictions import MEMBER, prediction_parts, thetao_field
from xdepthrecon.gridding import grid_spacing

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Colour maps per kind of field.
CMAPS: dict[str, str] = {"temperature": "RdYlBu_r", "error": "RdBu_r", "spread": "viridis"}
#: Background colour that shows through NaN cells (land, sea floor).
LAND_COLOR = "0.75"
#: Reference lines drawn on score plots.
_REFERENCE = {"bias": 0.0, "spread_skill": 1.0}
_LONGITUDE_LABEL = "longitude (degrees_east)"
_LATITUDE_LABEL = "latitude (degrees_north)"
_DEPTH_LABEL = "depth (m)"


def plot_map(
    ds: xr.Dataset | xr.DataArray,
    depth: float,
    *,
    time: int | Any = 0,
    ax: Axes | None = None,
    observations: xr.Dataset | xr.DataArray | None = None,
    kind: str = "temperature",
    truth: xr.Dataset | xr.DataArray | None = None,
    **kwargs: Any,
) -> Axes:
    """Map of temperature, error or ensemble spread at one depth and time.

    Parameters
    ----------
    ds
        Canonical cube or reconstruction (``thetao``, optionally ``thetao_std``, ``thetao_members``
        or a ``member`` dimension: the member mean is drawn), or a ``thetao`` DataArray.
    depth
        Depth in metres; the nearest level is drawn.
    time
        Index of the time step (an int) or a time value (nearest). Ignored without a time axis.
    ax
        Axes to draw on; a new figure if None.
    observations
        Observation positions to overlay: canonical profiles (dims ``profile``, drawn at their
        positions, all of them), or gridded observations on the cube's grid (``grid_profiles``
        output, or a boolean DataArray such as ``x_mask``): the cells observed at this depth and time.
    kind
        ``"temperature"``, ``"error"`` (prediction - ``truth``, diverging, centred on 0) or
        ``"spread"`` (``thetao_std``, or the members' standard deviation).
    truth
        The truth cube, needed for ``kind="error"``.
    **kwargs
        Passed to ``pcolormesh``: ``cmap``, ``vmin`` and ``vmax`` override the colour map of ``kind``
        and the limits (errors default to limits symmetric about 0).

    Returns
    -------
    matplotlib.axes.Axes
    """
    field, label = _field(ds, kind, truth)
    field = _select(field, time=time, depth=depth)
    ax = _new_axes(ax, (8.0, 4.2))
    image = _mesh(ax, field.longitude, field.latitude, field, kind, **kwargs)
    ax.figure.colorbar(image, ax=ax, label=label)
    if observations is not None:
        _overlay_positions(ax, observations, time, float(field.depth))
    ax.set(xlabel=_LONGITUDE_LABEL, ylabel=_LATITUDE_LABEL,
           title=f"{_KIND_TITLES[kind]} at {float(field.depth):.4g} m{_time_title(field)}")
    return ax


def plot_section(
    ds: xr.Dataset | xr.DataArray,
    latitude: float | None = None,
    longitude: float | None = None,
    *,
    time: int | Any = 0,
    ax: Axes | None = None,
    kind: str = "temperature",
    truth: xr.Dataset | xr.DataArray | None = None,
    **kwargs: Any,
) -> Axes:
    """Vertical section along a latitude (zonal) or a longitude (meridional), depth downward.

    Parameters
    ----------
    ds
        As for :func:`plot_map`. A field already reduced over one horizontal axis (e.g. a zonal
        mean, ``cube.mean("longitude")``) needs neither ``latitude`` nor ``longitude``.
    latitude, longitude
        Give one: the section runs along that latitude (nearest row) or longitude (nearest column).
    time, ax, kind, truth, **kwargs
        As for :func:`plot_map`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if latitude is not None and longitude is not None:
        raise ValueError("give latitude (a zonal section) or longitude (a meridional section), not both.")
    field, label = _field(ds, kind, truth)
    field = _select(field, time=time, latitude=latitude, longitude=longitude)
    across = [d for d in field.dims if d != "depth"]
    if "depth" not in field.dims or len(across) != 1 or across[0] not in ("latitude", "longitude"):
        raise ValueError(
            f"a section needs depth and one horizontal axis, but the selection has dims {tuple(map(str, field.dims))}; "
            "pass latitude=... or longitude=... (or a field reduced over one horizontal axis)."
        )
    along = across[0]
    ax = _new_axes(ax, (8.0, 4.2))
    image = _mesh(ax, field[along], field.depth, field.transpose("depth", along), kind, **kwargs)
    ax.figure.colorbar(image, ax=ax, label=label)
    place = "" if latitude is None and longitude is None else (
        f" at {_latitude_text(field.latitude)}" if latitude is not None else f" at {_longitude_text(field.longitude)}")
    ax.set(xlabel=_LONGITUDE_LABEL if along == "longitude" else _LATITUDE_LABEL, ylabel=_DEPTH_LABEL,
           title=f"{_KIND_TITLES[kind]} section{place}{_time_title(field)}")
    ax.invert_yaxis()
    return ax


def plot_profile(
    ds: xr.Dataset | xr.DataArray,
    latitude: float | None = None,
    longitude: float | None = None,
    *,
    time: int | Any = 0,
    ax: Axes | None = None,
    observations: xr.Dataset | xr.DataArray | None = None,
    truth: xr.Dataset | xr.DataArray | None = None,
    label: str = "prediction",
    color: str | None = None,
) -> Axes:
    """Temperature profile of one column, with its ensemble spread and the observations there.

    Parameters
    ----------
    ds
        As for :func:`plot_map`. With ``thetao_std`` or members, mean +- 1 std is shaded. A field
        with no horizontal axes (e.g. an area mean with its spread) needs no latitude/longitude.
    latitude, longitude
        The column (nearest grid cell).
    time, ax
        As for :func:`plot_map`.
    observations
        Canonical profiles (those within half a grid cell of the column are drawn as points; pass
        the profiles of the time plotted) or gridded observations (``grid_profiles`` output: ``x``
        at this column and time).
    truth
        A truth cube drawn as a dashed black line, if given.
    label, color
        Legend label and colour of the prediction line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    parts = prediction_parts(ds)
    where = {"time": time, "latitude": latitude, "longitude": longitude}
    mean = _column(parts.mean, where)
    spread = None
    if parts.members is not None:
        spread = _column(parts.members, where).std(MEMBER, ddof=1, skipna=False)
    elif parts.std is not None:
        spread = _column(parts.std, where)
    ax = _new_axes(ax, (4.2, 5.5))
    line = ax.plot(mean, mean.depth, "-", color=color, label=label)[0]
    if spread is not None:
        ax.fill_betweenx(mean.depth, mean - spread, mean + spread, color=line.get_color(), alpha=0.25,
                         linewidth=0, label=f"{label} +- 1 std")
    if truth is not None:
        column = _column(thetao_field(truth, "truth"), where)
        ax.plot(column, column.depth, "k--", label="truth")
    if observations is not None:
        depth, values = _observations_at(observations, ds, mean, time)
        ax.plot(values, depth, "o", color="k", markersize=4, label="observations")
    units = parts.mean.attrs.get("units", "degC")
    place = ""
    if "latitude" in mean.coords and "longitude" in mean.coords:
        place = f" at {_latitude_text(mean.latitude)} {_longitude_text(mean.longitude)}"
    ax.set(xlabel=f"temperature ({units})", ylabel=_DEPTH_LABEL, title=f"profile{place}{_time_title(mean)}")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_scores(
    scores: Mapping[str, xr.Dataset] | xr.Dataset | pd.DataFrame,
    metric: str = "rmse",
    ax: Axes | None = None,
    columns: str = "all",
    **kwargs: Any,
) -> Axes:
    """A score against depth, one line per method, depth downward.

    Parameters
    ----------
    scores
        ``{method name: evaluate() output}``, one ``evaluate()`` output, or a tidy table with
        columns ``method``, ``depth`` and either ``metric`` + ``value`` (long form) or one column
        per metric (wide form); an optional ``columns`` column is filtered like the dimension.
    metric
        The score to draw (``"rmse"``, ``"mae"``, ``"bias"``, ``"crps"``, ``"spread_skill"``, ...).
    ax
        Axes to draw on; a new figure if None.
    columns
        Which of ``all``, ``observed``, ``unobserved`` to draw where scores have that split.
    **kwargs
        Passed to ``ax.plot`` for every line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    lines = score_lines(scores, metric, columns)
    ax = _new_axes(ax, (4.8, 5.5))
    for name, series in lines.items():
        ax.plot(series.to_numpy(), series.index.to_numpy(), marker="o", markersize=3, label=name, **kwargs)
    if metric in _REFERENCE:
        ax.axvline(_REFERENCE[metric], color="0.5", linewidth=0.8, zorder=0)
    long_name, units = LONG_NAMES.get(metric, (metric, None))
    ax.set(xlabel=f"{metric} ({units or 'degC'})", ylabel=_DEPTH_LABEL,
           title=f"{long_name}" + ("" if columns == "all" else f", {columns} columns"))
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    return ax


_KIND_TITLES = {"temperature": "temperature", "error": "error", "spread": "ensemble spread"}


def _field(
    ds: xr.Dataset | xr.DataArray, kind: str, truth: xr.Dataset | xr.DataArray | None
) -> tuple[xr.DataArray, str]:
    """The field to draw for ``kind``, and its colour bar label."""
    if kind not in CMAPS:
        raise ValueError(f"kind={kind!r} is not one of {list(CMAPS)}.")
    parts = prediction_parts(ds)
    units = parts.mean.attrs.get("units", "degC")
    if kind == "temperature":
        return parts.mean, f"temperature ({units})"
    if kind == "error":
        if truth is None:
            raise ValueError("kind='error' needs the truth: pass truth=<truth cube>.")
        prediction, target = xr.align(parts.mean, thetao_field(truth, "truth"), join="inner")
        return prediction - target, f"prediction - truth ({units})"
    if parts.members is not None:
        return parts.members.std(MEMBER, ddof=1, skipna=False), f"ensemble spread, std ({units})"
    if parts.std is None:
        raise ValueError("kind='spread' needs thetao_std or ensemble members in the data.")
    return parts.std, f"uncertainty, std ({units})"


def _select(field: xr.DataArray, **where: Any) -> xr.DataArray:
    """Select ``time`` by index (int) or nearest value and other axes by nearest value, where present."""
    for dim, value in where.items():
        if value is None or dim not in field.dims:
            continue
        if dim == "time" and isinstance(value, (int, np.integer)):
            field = field.isel(time=value)
        else:
            field = field.sel({dim: value}, method="nearest")
    return field


def _column(field: xr.DataArray, where: Mapping[str, Any]) -> xr.DataArray:
    column = _select(field, **where)
    extra = [str(d) for d in column.dims if d not in ("depth", MEMBER)]
    if extra:
        raise ValueError(f"the profile still has dims {extra}; pass latitude=... and longitude=... to pick a column.")
    return column


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, layout="constrained")[1]


def _mesh(ax: Axes, x, y, field: xr.DataArray, kind: str, **kwargs: Any):
    """``pcolormesh`` of ``field`` with the colour map of ``kind``, errors symmetric about 0, unless overridden."""
    values = np.asarray(field.values, dtype="float64")
    if kind == "error" and kwargs.get("vmin") is None and kwargs.get("vmax") is None:
        largest = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
        kwargs["vmax"] = float(largest) if largest > 0 else 1.0
        kwargs["vmin"] = -kwargs["vmax"]
    kwargs["cmap"] = kwargs.get("cmap") or CMAPS[kind]
    kwargs.setdefault("shading", "auto")
    ax.set_facecolor(LAND_COLOR)
    return ax.pcolormesh(np.asarray(x), np.asarray(y), values, **kwargs)


def _latitude_text(value) -> str:
    return f"{abs(float(value)):.4g}\N{DEGREE SIGN}{'N' if float(value) >= 0 else 'S'}"


def _longitude_text(value) -> str:
    return f"{abs(float(value)):.4g}\N{DEGREE SIGN}{'E' if float(value) >= 0 else 'W'}"


def _time_title(field: xr.DataArray) -> str:
    if "time" not in field.coords or field["time"].ndim != 0:
        return ""
    value = field["time"].values[()]
    if isinstance(value, np.datetime64):
        return f", {np.datetime_as_string(value, unit='D')}"
    return f", {str(value).split(' ')[0]}"


def _gridded_mask(observations: xr.Dataset | xr.DataArray) -> xr.DataArray:
    if isinstance(observations, xr.DataArray):
        return observations if observations.dtype == bool else observations.notnull()
    if "x_mask" in observations:
        return observations["x_mask"]
    if "x" in observations:
        return observations["x"].notnull()
    raise ValueError(
        f"observations must be canonical profiles (dim 'profile') or gridded observations with 'x' or 'x_mask'; "
        f"got variables {list(map(str, observations.data_vars))}."
    )


def _overlay_positions(ax: Axes, observations: xr.Dataset | xr.DataArray, time, depth: float) -> None:
    if "profile" in observations.dims:
        lon, lat = observations.longitude.values, observations.latitude.values
    else:
        cells = _select(_gridded_mask(observations), time=time, depth=depth).stack(cell=("latitude", "longitude"))
        cells = cells.isel(cell=np.flatnonzero(cells.values))
        lon, lat = cells.longitude.values, cells.latitude.values
    ax.scatter(lon, lat, s=14, facecolors="none", edgecolors="k", linewidths=0.8, label="observations")
    ax.legend(loc="lower left", fontsize=8)


def _observations_at(
    observations: xr.Dataset | xr.DataArray, ds, column: xr.DataArray, time
) -> tuple[np.ndarray, np.ndarray]:
    """Depths and temperatures of the observations in the plotted column."""
    if "profile" not in observations.dims:
        values = _select(_thetao_or_x(observations), time=time, latitude=float(column.latitude),
                         longitude=float(column.longitude))
        return values.depth.values, values.values
    grid = prediction_parts(ds).mean
    half_lat = 0.5 * grid_spacing(grid.latitude.values)
    half_lon = 0.5 * grid_spacing(grid.longitude.values)
    lat_distance = np.abs(observations.latitude.values - float(column.latitude))
    lon_distance = np.abs((observations.longitude.values - float(column.longitude) + 180.0) % 360.0 - 180.0)
    near = (lat_distance <= half_lat) & (lon_distance <= half_lon)
    chosen = observations.isel(profile=np.flatnonzero(near))
    return chosen.depth.values.ravel(), chosen.temperature.values.ravel()


def _thetao_or_x(observations: xr.Dataset | xr.DataArray) -> xr.DataArray:
    if isinstance(observations, xr.DataArray):
        return observations
    if "x" in observations:
        return observations["x"]
    return thetao_field(observations, "observations")
