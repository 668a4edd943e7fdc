"""Wavenumber spectra of the error along longitude, and the effective resolution they give.

As in the SSH-mapping data challenges (Le Guillou et al. 2021, Ballarotta et al. 2019), the spectral
score 1 - PSD(prediction - truth) / PSD(truth) is near 1 at the scales a method gets right and falls
towards 0 (or below) at the scales it misses; the effective resolution lambda_x is the wavelength
where the score crosses 0.5. Here the spectra run along longitude, one row per (time, depth, latitude).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from xdepthrecon.stats.geometry import KM_PER_DEGREE

#: Rows shorter than this many cells give no spectrum.
MIN_POINTS = 8


def wavenumber_spectra(
    prediction: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    mask: xr.DataArray | None = None,
    keep: Sequence[str] = (),
) -> xr.Dataset:
    """Mean power spectra of the error and of the truth along longitude, and their score.

    Rows: one row is a line of the cube along longitude at one time, depth and latitude, limited
    to the longitude arc of ``mask`` (the shortest arc that holds all its True cells; on a global
    grid it may cross the dateline). **Gap treatment**: a row enters only if every cell of the arc
    is valid in both fields and True in ``mask``; rows with land or gaps are left out, nothing is
    filled. A row spanning the whole of a global grid is periodic (its mean is removed, no window);
    any other row has its linear trend removed and a Hann window applied. The rows' one-sided PSDs
    are averaged with cos(latitude) weights over ``time`` and ``latitude`` (less ``keep``).

    Parameters
    ----------
    prediction, truth
        Canonical cubes or their ``thetao`` DataArrays (for an ensemble pass its mean).
    mask
        Boolean, True where to score; it also sets the longitude arc.
    keep
        Dimensions not averaged over (``"time"``, or ``"latitude"`` for one spectrum per row).

    Returns
    -------
    xarray.Dataset
        ``psd_error`` and ``psd_truth`` (degC^2 per cycle per degree of longitude), ``score`` =
        1 - psd_error / psd_truth on ``wavenumber`` (cycles per degree of longitude), ``rows`` (rows
        averaged) and ``km_per_degree``: km per degree of longitude at the rows used,
        ``KM_PER_DEGREE`` times their weighted mean cos(latitude), by which wavelengths in degrees
        turn into km (rows at different latitudes share one wavenumber axis in degrees).
    """
    prediction, truth = xr.align(_thetao(prediction), _thetao(truth), join="inner")
    if "longitude" in keep:
        raise ValueError("keep cannot hold 'longitude': the spectra are taken along it.")
    valid = truth.notnull() & prediction.notnull()
    if mask is not None:
        valid = valid & mask
    longitude = np.asarray(truth.longitude.values, dtype="float64")
    spacing = float(np.median(np.diff(longitude) % 360.0)) if longitude.size > 1 else 360.0
    is_global = abs(longitude.size * spacing - 360.0) < 0.5 * spacing
    arc = _arc(mask, longitude.size, is_global)
    periodic = is_global and arc.size == longitude.size
    complete = valid.isel(longitude=arc).all("longitude")
    coslat = np.cos(np.deg2rad(truth.latitude.astype("float64"))).clip(min=0.0)
    row_weight = complete * coslat
    averaged = [d for d in ("time", "latitude") if d in truth.dims and d not in keep]
    weight_sum = row_weight.sum(averaged)
    denominator = weight_sum.where(weight_sum > 0)

    def mean_psd(field: xr.DataArray) -> xr.DataArray:
        return (_psd(field.isel(longitude=arc), periodic, spacing) * row_weight).sum(averaged) / denominator

    psd_error = mean_psd(prediction - truth)
    psd_truth = mean_psd(truth)
    wavenumber = np.arange(1, arc.size // 2 + 1) / (arc.size * spacing)
    spectra = xr.Dataset(
        {
            "psd_error": psd_error.assign_attrs(long_name="power spectral density of prediction - truth"),
            "psd_truth": psd_truth.assign_attrs(long_name="power spectral density of the truth"),
            "score": (1.0 - psd_error / psd_truth.where(psd_truth > 0)).assign_attrs(
                long_name="spectral score 1 - PSD_err / PSD_truth", units="1"),
            "rows": complete.sum(averaged).assign_attrs(long_name="rows averaged", units="1"),
            "km_per_degree": (KM_PER_DEGREE * (row_weight * coslat).sum(averaged) / denominator).assign_attrs(
                long_name="km per degree of longitude at the rows used", units="km"),
        },
        coords={"wavenumber": ("wavenumber", wavenumber,
                               {"long_name": "zonal wavenumber", "units": "cycles per degree_east"})},
    )
    return spectra.transpose("depth", ..., "wavenumber", missing_dims="ignore")


def effective_resolution(
    prediction: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    mask: xr.DataArray | None = None,
    keep: Sequence[str] = (),
) -> xr.DataArray:
    """Effective resolution lambda_x (km) per depth: where 1 - PSD_err / PSD_truth crosses 0.5.

    The score of :func:`wavenumber_spectra` is followed from the longest wavelength to the shortest;
    lambda_x is the wavelength of its first fall below 0.5, interpolated linearly in wavenumber, in
    km at the rows' mean latitude. Where the score stays at or above 0.5 at every wavenumber,
    lambda_x is the shortest wavelength the grid holds (two cells): a bound, the method resolves
    all the grid shows. It is NaN where it is not defined: no complete row, an arc shorter than
    ``MIN_POINTS`` cells, or a score already below 0.5 at the longest wavelength (no scale resolved).

    Parameters
    ----------
    prediction, truth, mask, keep
        As for :func:`wavenumber_spectra`.

    Returns
    -------
    xarray.DataArray
        ``effective_resolution`` in km on ``depth`` (and ``keep``).
    """
    spectra = wavenumber_spectra(prediction, truth, mask=mask, keep=keep)
    crossing = xr.apply_ufunc(
        _half_crossing, spectra.score, kwargs={"wavenumber": spectra.wavenumber.values},
        input_core_dims=[["wavenumber"]], dask="parallelized", output_dtypes=[np.float64],
    )
    resolution = spectra.km_per_degree / crossing
    return resolution.rename("effective_resolution").assign_attrs(
        long_name="effective resolution: wavelength where 1 - PSD_err/PSD_truth = 0.5", units="km")


def _thetao(obj: xr.Dataset | xr.DataArray) -> xr.DataArray:
    return obj["thetao"] if isinstance(obj, xr.Dataset) else obj


def _arc(mask: xr.DataArray | None, size: int, periodic: bool) -> np.ndarray:
    """Indices of the shortest longitude arc holding every True cell of ``mask`` (all if none)."""
    if mask is None or "longitude" not in mask.dims:
        return np.arange(size)
    inside = np.asarray(mask.any([d for d in mask.dims if d != "longitude"]).values, dtype=bool)
    true = np.flatnonzero(inside)
    if true.size in (0, size):
        return np.arange(size)
    if not periodic:
        return np.arange(true[0], true[-1] + 1)
    gaps = np.diff(np.r_[true, true[0] + size])
    widest = int(np.argmax(gaps))
    start = true[(widest + 1) % true.size]
    return (start + np.arange(size - gaps[widest] + 1)) % size


def _psd(field: xr.DataArray, periodic: bool, spacing: float) -> xr.DataArray:
    return xr.apply_ufunc(
        _psd_kernel, field, kwargs={"periodic": periodic, "spacing": spacing},
        input_core_dims=[["longitude"]], output_core_dims=[["wavenumber"]], dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"wavenumber": field.sizes["longitude"] // 2}, "allow_rechunk": True},
    )


def _psd_kernel(values: np.ndarray, periodic: bool, spacing: float) -> np.ndarray:
    """One-sided PSD along the last axis, without the mean (NaN are zero: such rows get no weight)."""
    size = values.shape[-1]
    if size < MIN_POINTS:
        return np.full(values.shape[:-1] + (size // 2,), np.nan)
    x = np.nan_to_num(values.astype(np.float64))
    x = x - x.mean(-1, keepdims=True)
    window = np.ones(size)
    if not periodic:
        ramp = np.linspace(-1.0, 1.0, size)
        x = x - (x @ ramp)[..., None] * ramp / (ramp @ ramp)
        window = np.hanning(size)
    power = np.abs(np.fft.rfft(x * window, axis=-1)[..., 1:]) ** 2
    one_sided = np.full(power.shape[-1], 2.0)
    if size % 2 == 0:
        one_sided[-1] = 1.0
    return power * one_sided * spacing / (window**2).sum()


def _half_crossing(score: np.ndarray, wavenumber: np.ndarray) -> np.ndarray:
    """Wavenumber where ``score`` (last axis, increasing wavenumber) first falls below 0.5."""
    out = np.full(int(np.prod(score.shape[:-1])), np.nan)
    if score.shape[-1] == 0:
        return out.reshape(score.shape[:-1])
    flat = score.reshape(out.size, score.shape[-1])
    for row, values in enumerate(flat):
        if np.isnan(values).any() or values[0] < 0.5:
            continue
        below = np.flatnonzero(values < 0.5)
        if below.size == 0:
            out[row] = wavenumber[-1]
            continue
        j = below[0]
        out[row] = np.interp(0.5, [values[j], values[j - 1]], [wavenumber[j], wavenumber[j - 1]])
    return out.reshape(score.shape[:-1])
