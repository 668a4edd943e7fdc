"""Score a temperature reconstruction against the truth, per depth.

:func:`evaluate` makes the numbers the OSSE tables hold: RMSE, MAE, bias and Pearson correlation of
the point estimate and, for probabilistic predictions, the CRPS and the spread/skill ratio. Every
score is a cos(latitude)-weighted mean over the points where the truth and the prediction are
valid (and a user mask is True), per depth, split into all / observed / unobserved columns and by
any regions or dimensions asked for. The effective resolution comes from
:mod:`xdepthrecon.evaluation.spectra`. Everything is an xarray reduction: dask input gives a lazy result.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.evaluation.crps import crps_ensemble, crps_gaussian
from xdepthrecon.evaluation.predictions import MEMBER, Prediction, prediction_parts, thetao_field
from xdepthrecon.evaluation.spectra import effective_resolution

#: Values of the ``columns`` dimension when ``observed`` is given.
COLUMNS: tuple[str, str, str] = ("all", "observed", "unobserved")
#: Dimensions a score is averaged over unless kept with ``by``.
_AVERAGED = ("time", "latitude", "longitude")


def evaluate(
    prediction: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    mask: xr.DataArray | None = None,
    observed: xr.DataArray | None = None,
    *,
    by: str | xr.DataArray | Sequence[str | xr.DataArray] | None = None,
    fair: bool = False,
    resolution: bool = True,
) -> xr.Dataset:
    """Score a prediction against the truth, per depth.

    All scores are means over ``time``, ``latitude`` and ``longitude`` (less any dimension kept by
    ``by``), weighted by cos(latitude), over the points where the truth and the prediction (and
    its std) are not NaN and ``mask`` is True. The same points enter every score of a row.

    - ``bias`` = mean(p - t), ``mae`` = mean(|p - t|), ``rmse`` = sqrt(mean((p - t)^2)), ``correlation``
      = weighted Pearson correlation of p and t, ``points`` = number of points scored (not weighted).
    - Ensembles (a ``member`` dimension on ``thetao``, or ``thetao_members``): p is the ensemble mean
      (mean over members) and ``crps`` is the ensemble CRPS of each point,
      mean_i |X_i - y| - 1/(2 M^2) sum_ij |X_i - X_j| (the CRPS of the ensemble's empirical
      distribution, as in properscoring and xskillscore), or with ``fair=True`` the fair CRPS
      (Ferro 2014) that divides the pair sum by 2 M (M - 1) instead: it estimates the CRPS of the
      distribution the members are drawn from, so ensembles of different sizes compare fairly.
      ``spread`` = sqrt(mean of the unbiased member variance) and ``spread_skill`` =
      sqrt((M + 1) / M) * spread / rmse (Fortin et al. 2014): the ensemble-size factor makes the
      ratio 1 for a reliable ensemble of M members, whose mean's squared error is (1 + 1/M) times
      the variance. Members centred on their stated mean and scaled to its stated error (those of
      :func:`~xdepthrecon.reconstruct`, marked in their attributes) are not independent draws: their
      ``spread_skill`` is spread / rmse, and their fair CRPS is optimistic (a warning says so).
    - Gaussian predictions (``thetao`` with ``thetao_std``): ``crps`` is the closed form of
      Gneiting et al. (2005), sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = (t - p) / sigma,
      equal to |p - t| where sigma = 0; ``spread`` = sqrt(mean sigma^2), ``spread_skill`` = spread / rmse.
    - ``effective_resolution`` (km): the wavelength below which the error spectrum along longitude
      exceeds half the truth's, see :func:`xdepthrecon.evaluation.spectra.effective_resolution`. It describes
      rows, not columns, so it has no ``columns`` dimension.

    Parameters
    ----------
    prediction
        Canonical cube (``thetao(time, depth, latitude, longitude)``), optionally with a ``member``
        dimension, ``thetao_members(member, ...)`` or ``thetao_std``; or the ``thetao`` DataArray.
        With members, ``thetao`` is ignored and the member mean is scored.
    truth
        Canonical cube or its ``thetao`` DataArray. Prediction and truth are aligned on their
        shared coordinate values (inner join); an empty overlap is an error.
    mask
        Boolean, True where to score, broadcastable against the cube (e.g. a held-out region
        ``(latitude, longitude)`` or held-out times ``(time,)``).
    observed
        Boolean, True in observed columns: ``(latitude, longitude)``, ``(time, latitude,
        longitude)``, or a per-level mask such as ``grid_profiles(...).x_mask`` (reduced with
        ``any('depth')``). Adds a ``columns`` dimension with values ``all``, ``observed``, ``unobserved``.
    by
        What to split the scores by besides depth: the name of a dimension to keep (``"time"``),
        a DataArray of labels on some of ``time``, ``latitude``, ``longitude`` (its name, default
        ``region``, becomes a dimension whose values are the distinct labels; NaN labels are left
        out), or a list of these. Labels are read into memory.
    fair
        Use the fair ensemble CRPS (see above). Ignored without members.
    resolution
        Compute the effective resolution (set False to skip the spectra). A mask or label array
        backed by dask is read to find its longitude extent.

    Returns
    -------
    xarray.Dataset
        ``rmse``, ``mae``, ``bias``, ``correlation``, ``points`` and, where defined, ``crps``,
        ``spread``, ``spread_skill`` and ``effective_resolution``, on ``depth`` (and ``columns``
        and the ``by`` dimensions). Rows without any valid point are NaN with ``points`` 0.

    Examples
    --------
    >>> scores = xdepthrecon.evaluate(reconstruction, truth, observed=gridded.x_mask)  # doctest: +SKIP
    >>> scores.rmse.sel(columns="unobserved").to_series()  # doctest: +SKIP
    """
    target = _truth_field(truth)
    parts = prediction_parts(prediction)
    keep, labels = _groups(by, target)
    mask = None if mask is None else _boolean(mask, "mask")
    observed = None if observed is None else _observed_columns(observed)
    extras = [a for a in (parts.members, parts.std, mask, observed, *labels) if a is not None]
    target, mean, *extras = xr.align(target, parts.mean, *extras, join="inner")
    _check_overlap(target, prediction_dims=mean.dims)
    members, std, mask, observed, labels = _unpack(extras, parts, mask, observed, labels)

    valid = target.notnull() & mean.notnull()
    if std is not None:
        valid = valid & std.notnull()
    if mask is not None:
        valid = valid & mask
    weight = valid * np.cos(np.deg2rad(target.latitude.astype("float64"))).clip(min=0.0)
    selector = _selector(observed, labels)
    averaged = [d for d in _AVERAGED if d in target.dims and d not in keep]

    def total(values: xr.DataArray | None, weights: xr.DataArray = weight) -> xr.DataArray:
        weighted = weights if values is None else weights * values
        return weighted.sum(averaged) if selector is None else xr.dot(weighted, selector, dim=averaged)

    weight_sum = total(None)
    denominator = weight_sum.where(weight_sum > 0)

    def average(values: xr.DataArray) -> xr.DataArray:
        return total(xr.where(valid, values, 0.0)) / denominator

    error = mean - target
    rmse = np.sqrt(average(error**2))
    scores = {
        "rmse": rmse,
        "mae": average(abs(error)),
        "bias": average(error),
        "correlation": _correlation(mean, target, valid, average),
        "points": total(None, valid.astype("float64")).round().astype("int64"),
    }
    ensemble_size = None
    if members is not None:
        ensemble_size = members.sizes[MEMBER]
        if fair and parts.calibrated:
            warnings.warn(f"the {ensemble_size} members are centred on thetao and scaled to thetao_std (as "
                          "reconstruct makes them), not independent draws: their fair CRPS is optimistic (about 4 % "
                          "with 16 members). Score the stated error instead (drop thetao_members), or use fair=False.",
                          UserWarning, stacklevel=2)
        scores["crps"] = average(crps_ensemble(members, target, fair=fair))
        scores["spread"] = np.sqrt(average(members.var(MEMBER, ddof=1, skipna=False)))
        finite_ensemble = 1.0 if parts.calibrated else np.sqrt((ensemble_size + 1) / ensemble_size)
        scores["spread_skill"] = finite_ensemble * scores["spread"] / rmse.where(rmse > 0)
    elif std is not None:
        scores["crps"] = average(crps_gaussian(mean, std, target))
        scores["spread"] = np.sqrt(average(std**2))
        scores["spread_skill"] = scores["spread"] / rmse.where(rmse > 0)
    if resolution and "longitude" not in keep:
        scores["effective_resolution"] = _resolution(mean, target, mask, keep, labels)

    units = str(target.attrs.get("units", "degC"))
    out = xr.Dataset({name: value.rename(name) for name, value in scores.items()})
    for name in out.data_vars:
        out[name].attrs = _attrs(name, units)
    order = ["depth", *[d for d in ("columns", *keep, *(lab.name for lab in labels)) if d in out.dims]]
    out = out.transpose(*order, ...)
    out.attrs = with_history(
        {
            "title": "scores of a prediction against the truth, per depth",
            "weighting": "cos(latitude) over points where truth and prediction are valid and mask is True",
            "prediction": _describe(parts, ensemble_size, fair),
        },
        describe_call("xdepthrecon.evaluate", fair=fair if members is not None else None,
                      mask="given" if mask is not None else None,
                      observed="given" if observed is not None else None,
                      by=[k for k in keep] + [str(lab.name) for lab in labels] or None),
    )
    return out


def _correlation(mean: xr.DataArray, target: xr.DataArray, valid: xr.DataArray, average) -> xr.DataArray:
    """Weighted Pearson correlation, from moments about a per-depth reference (no cancellation)."""
    others = [d for d in target.dims if d != "depth"]
    valid_count = valid.sum(others)
    reference = xr.where(valid, target, 0.0).sum(others) / valid_count.where(valid_count > 0)
    p, t = mean - reference, target - reference
    mean_p, mean_t = average(p), average(t)
    covariance = average(p * t) - mean_p * mean_t
    variances = (average(p**2) - mean_p**2) * (average(t**2) - mean_t**2)
    return covariance / np.sqrt(variances.where(variances > 0))


def _resolution(
    mean: xr.DataArray, target: xr.DataArray, mask: xr.DataArray | None, keep: list[str], labels: list[xr.DataArray]
) -> xr.DataArray:
    """Effective resolution per depth and ``by`` group: one spectrum per combination of labels."""
    results = []
    for combination in itertools.product(*(lab[lab.name].values for lab in labels)):
        region = mask
        for lab, value in zip(labels, combination):
            selected = lab.sel({lab.name: value}, drop=True)
            region = selected if region is None else region & selected
        result = effective_resolution(mean, target, mask=region, keep=keep)
        results.append(result.expand_dims({lab.name: [value] for lab, value in zip(labels, combination)}))
    merged = xr.merge([r.rename("effective_resolution") for r in results], compat="no_conflicts", join="outer")
    return merged["effective_resolution"]


def _truth_field(truth: xr.Dataset | xr.DataArray) -> xr.DataArray:
    field = thetao_field(truth, "truth")
    if MEMBER in field.dims:
        raise ValueError(f"the truth has a {MEMBER!r} dimension; select one member or pass the truth cube.")
    missing = [d for d in ("depth", "latitude", "longitude") if d not in field.dims]
    if missing:
        raise ValueError(
            f"the truth lacks the dimensions {missing} (it has {tuple(map(str, field.dims))}); "
            "bring it to the canonical layout with xdepthrecon.standardize first."
        )
    return field


def _boolean(array: xr.DataArray, name: str) -> xr.DataArray:
    if not isinstance(array, xr.DataArray) or array.dtype != bool:
        kind = type(array).__name__ if not isinstance(array, xr.DataArray) else f"DataArray of {array.dtype}"
        raise TypeError(f"{name} must be a boolean DataArray (True where it applies), got a {kind}; "
                        f"build one with a comparison, e.g. ds.latitude > 0, or .astype(bool).")
    bad = [str(d) for d in array.dims if d not in ("time", "depth", "latitude", "longitude")]
    if bad:
        raise ValueError(f"{name} has dimensions {bad} that the cube does not have; "
                         "its dimensions must be among time, depth, latitude, longitude.")
    return array


def _observed_columns(observed: xr.DataArray) -> xr.DataArray:
    observed = _boolean(observed, "observed")
    if "depth" in observed.dims:
        observed = observed.any("depth")
    columns = xr.concat([xr.ones_like(observed), observed, ~observed], dim="columns")
    return columns.assign_coords(columns=list(COLUMNS))


def _groups(by, target: xr.DataArray) -> tuple[list[str], list[xr.DataArray]]:
    """Dimensions to keep, and label arrays as one-hot boolean selectors along a new dimension."""
    if by is None:
        return [], []
    items = [by] if isinstance(by, (str, xr.DataArray)) else list(by)
    keep: list[str] = []
    labels: list[xr.DataArray] = []
    for item in items:
        if isinstance(item, str):
            if item not in _AVERAGED or item not in target.dims:
                raise ValueError(f"by={item!r} is not a dimension to keep; use one of "
                                 f"{[d for d in _AVERAGED if d in target.dims]} or a DataArray of labels.")
            keep.append(item)
        elif isinstance(item, xr.DataArray):
            labels.append(_one_hot(item, target))
        else:
            raise TypeError(f"by must be a dimension name or a DataArray of labels, got {type(item).__name__}.")
    return keep, labels


def _one_hot(labels: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
    name: Hashable = labels.name if labels.name is not None else "region"
    if name in target.dims or name == "columns":
        raise ValueError(f"the label array is named {name!r}, a dimension of the scores; "
                         "rename it (labels.rename('region')).")
    bad = [str(d) for d in labels.dims if d not in _AVERAGED]
    if bad:
        raise ValueError(f"label array {name!r} has dimensions {bad}; "
                         "labels must be on time, latitude and/or longitude.")
    values = np.asarray(labels.values).ravel()
    values = np.unique(values[pd.notna(values)])
    if values.size == 0:
        raise ValueError(f"label array {name!r} holds no labels (all missing).")
    return xr.concat([labels == value for value in values], dim=name).assign_coords({name: values}).rename(name)


def _selector(observed: xr.DataArray | None, labels: list[xr.DataArray]) -> xr.DataArray | None:
    """The product of the ``columns`` and label selectors, as float weights (None for no split)."""
    selector = None
    for part in ([observed] if observed is not None else []) + labels:
        part = part.astype("float64")
        selector = part if selector is None else selector * part
    return selector


def _unpack(extras, parts, mask, observed, labels):
    """Put the aligned optional arrays back in their places."""
    extras = list(extras)
    members = extras.pop(0) if parts.members is not None else None
    std = extras.pop(0) if parts.std is not None else None
    mask = extras.pop(0) if mask is not None else None
    observed = extras.pop(0) if observed is not None else None
    return members, std, mask, observed, extras


def _check_overlap(target: xr.DataArray, prediction_dims: tuple[Hashable, ...]) -> None:
    empty = [str(d) for d in target.dims if target.sizes[d] == 0]
    if empty:
        raise ValueError(
            f"prediction and truth share no {', '.join(empty)} coordinate values; check that they cover the same "
            "grid, or put one on the other's grid "
            "(e.g. prediction.reindex_like(truth, method='nearest', tolerance=1e-6))."
        )
    missing = [str(d) for d in target.dims if d not in prediction_dims]
    if missing:
        raise ValueError(f"the prediction lacks the truth's dimensions {missing}; standardise both cubes the same way.")


#: Long name and fixed units (None: the data's) of every score.
LONG_NAMES = {
    "rmse": ("root-mean-square error", None),
    "mae": ("mean absolute error", None),
    "bias": ("mean error, prediction - truth", None),
    "correlation": ("Pearson correlation of prediction and truth", "1"),
    "points": ("number of points scored (not weighted)", "1"),
    "crps": ("continuous ranked probability score", None),
    "spread": ("root-mean ensemble variance", None),
    "spread_skill": ("spread / rmse of the mean, ensemble-size corrected", "1"),
    "effective_resolution": ("shortest resolved wavelength along longitude (1 - PSD_err/PSD_truth = 0.5)", "km"),
}


def _attrs(name: str, units: str) -> dict[str, str]:
    long_name, fixed = LONG_NAMES[name]
    return {"long_name": long_name, "units": fixed or units}


def _describe(parts: Prediction, ensemble_size: int | None, fair: bool) -> str:
    if ensemble_size is not None:
        crps = "fair ensemble CRPS" if fair else "ensemble CRPS of the empirical distribution"
        made = " (centred on thetao, scaled to thetao_std)" if parts.calibrated else ""
        return f"ensemble of {ensemble_size} members{made}: mean scored, {crps}"
    if parts.std is not None:
        return "Gaussian (thetao, thetao_std): closed-form CRPS"
    return "deterministic"
