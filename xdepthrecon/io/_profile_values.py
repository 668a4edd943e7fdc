"""Decoding the values of profile files: QC flags as character codes, numbers, times of any calendar (Argo
``JULD`` rounded to its precision), strings and temperature units. Used by the layouts' readers
(:mod:`xdepthrecon.io._profile_layouts`).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.io import _names
from xdepthrecon.io.times import as_profile_times

_KELVIN_OFFSET = 273.15
#: Units of Argo/EN4 ``JULD`` when the file does not say.
_JULD_UNITS = "days since 1950-01-01 00:00:00"
_BLANK = ord(" ")


@contextmanager
def cftime_fallback_silenced() -> Iterator[None]:
    """Silence xarray's note that it decoded times to cftime: :func:`decoded_times` reads cftime of every calendar."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unable to decode time axis into full numpy.datetime64")
        yield


def flag_codes(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """QC flags as character codes (uint32) of ``shape``; blank (' ') where there is no flag.

    Accepts one character per value (``S1``/``U1``, as stored), strings joined along the level axis
    (as xarray decodes netCDF char arrays: one string per profile), and integer or float flags
    (argopy), NaN meaning no flag.
    """
    v = np.asarray(values)
    if v.dtype.kind in "biuf":
        f = v.astype("float64")
        digits = np.mod(np.nan_to_num(f, nan=0.0), 10).astype(np.uint32) + ord("0")
        codes = np.where(np.isfinite(f), digits, _BLANK).astype(np.uint32)[..., None]
    else:
        if v.dtype.kind == "O":
            v = np.array([flag_text(x) for x in v.ravel()], dtype="U").reshape(v.shape)
        width = max(v.dtype.itemsize // (4 if v.dtype.kind == "U" else 1), 1)
        v = v.astype(f"{v.dtype.kind}{width}")
        codes = v.view(np.uint32 if v.dtype.kind == "U" else np.uint8).reshape(v.shape + (width,))
        codes = np.where(codes == 0, _BLANK, codes).astype(np.uint32)
    if codes.ndim - 1 == len(shape):  # one flag per value: keep its first character
        return np.broadcast_to(codes[..., 0], shape)
    if codes.ndim == len(shape) and codes.shape[:-1] == shape[:-1]:  # strings along the level axis
        out = np.full(shape, _BLANK, dtype=np.uint32)
        n = min(codes.shape[-1], shape[-1])
        out[..., :n] = codes[..., :n]
        return out
    raise ValueError(f"QC flags of shape {v.shape} do not match the data of shape {shape}.")


def flag_text(x: object) -> str:
    """One flag string, unstripped (a blank keeps the place of a level without a flag)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, bytes):
        return x.decode("ascii", "replace")
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return str(x)


def float_values(var: xr.DataArray) -> np.ndarray:
    values = np.asarray(var.values)
    if values.dtype in (np.float32, np.float64):
        return values
    if values.dtype.kind in "iub":
        return values.astype("float32" if values.dtype.itemsize <= 2 else "float64")
    if values.dtype.kind == "f":
        return values.astype("float32")
    raise TypeError(f"{str(var.name)!r} has dtype {values.dtype}, not numbers; check that it is the right variable.")


def decoded_times(var: xr.DataArray, name: Hashable) -> np.ndarray:
    """Profile times as datetime64[ns] by :func:`~xdepthrecon.io.times.as_profile_times` (any cftime calendar)."""
    with cftime_fallback_silenced():  # decoding is lazy: it happens here
        values = np.asarray(var.values)
    what = f"times of {str(name)!r}"
    if values.dtype.kind in "iuf":
        units = var.attrs.get("units") or var.encoding.get("units") or (
            _JULD_UNITS if str(name).upper() == "JULD" else None)
        if units is None or " since " not in units:
            raise ValueError(
                f"time {str(name)!r} is numeric without CF units ('days since ...'); decode it "
                "(xr.decode_cf) or give it units such as 'days since 1950-01-01'."
            )
        calendar = {"calendar": var.attrs["calendar"]} if "calendar" in var.attrs else {}
        with cftime_fallback_silenced():
            values = np.asarray(xr.decode_cf(xr.Dataset({"t": (var.dims, values, {"units": units, **calendar})}))["t"])
    elif values.dtype.kind in "SU" or (values.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in
                                                                         values.ravel())):
        try:
            values = pd.to_datetime([flag_text(v) for v in values.ravel()], format="ISO8601").to_numpy()
        except (ValueError, TypeError) as err:
            raise ValueError(f"{what} cannot be read as ISO 8601 dates ({err}); decode them first.") from None
    try:
        times, _ = as_profile_times(values, what)
    except TypeError:
        raise TypeError(f"time {str(name)!r} has dtype {values.dtype}; give datetimes or CF-encoded numbers.") from None
    if str(name).upper() == "JULD":
        times = round_juld(times, var.attrs.get("resolution"))
    return times


def round_juld(times: np.ndarray, resolution: float | None) -> np.ndarray:
    """Argo/EN4 ``JULD`` rounded to its precision: the second, or a finer power of ten nearer a stated resolution.

    ``JULD`` is float days since 1950, so decoding leaves float noise (09:01:59.999999744 for 09:02). The
    ``resolution`` attribute (days) is not the grid the values lie on (files state 6 minutes and hold
    whole minutes), so it only refines the rounding below a second, never coarsens it.
    """
    step_ns = 10**9
    if resolution is not None and 0 < float(resolution) * 86_400 < 1:  # the nearest power of ten, 1e-5 d: 1 s
        step_ns = min(10 ** int(np.round(np.log10(float(resolution) * 86_400e9))), step_ns)
    ns = times.astype("int64")
    rounded = (ns + step_ns // 2) // step_ns * step_ns
    return np.where(np.isnat(times), times, rounded.astype("datetime64[ns]"))


def strings(values: np.ndarray) -> np.ndarray:
    return np.array([flag_text(x).strip() for x in np.asarray(values).ravel()], dtype=object)


def to_celsius(values: np.ndarray, units: str | None, name: Hashable) -> np.ndarray:
    if units is None:
        finite = values[np.isfinite(values)]
        median = float(np.median(finite)) if finite.size else 0.0
        if 200.0 <= median <= 400.0:
            raise ValueError(
                f"temperature {str(name)!r} has no units and its values (median {median:.2f}) look like Kelvin; "
                "pass units='K' to convert them, or units='degC' if they are Celsius."
            )
        return values
    scale = _names.temperature_scale(units)
    if scale is None:
        raise ValueError(
            f"temperature units {units!r} of {str(name)!r} are not understood; accepted are degC and K. "
            "Pass units='degC' or units='K'."
        )
    return values - values.dtype.type(_KELVIN_OFFSET) if scale == "K" else values
