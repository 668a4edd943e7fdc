"""Read the layouts profile data come in (EN4, Argo, argopy, plain tables) into plain arrays.

Private to :mod:`xdepthrecon.io.profiles`. Here variables are found by name (tables in ``_names``),
fill values and times are decoded, character or integer QC flags are compared with the accepted
ones, Argo adjusted values are chosen, and table rows are grouped into profiles. Dropping and
counting what fails quality control, and the canonical form, live in :mod:`xdepthrecon.io.profiles`.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.io import _names
from xdepthrecon.io._profile_values import (cftime_fallback_silenced, decoded_times, flag_codes, float_values,
                                            strings, to_celsius)

#: Argo's name of the sampling of a profile: primary, near-surface, secondary (one cycle may hold several).
_SAMPLING_SCHEME = "VERTICAL_SAMPLING_SCHEME"
#: Start of the scheme of an Argo cycle's primary profile (Argo user's manual, reference table 16).
_PRIMARY_SCHEME = "Primary sampling"
#: Argo data modes, most adjusted first: of profiles repeating one cycle, the first of these is kept.
_MODE_RANK = {ord("D"): 0, ord("A"): 1}


@dataclass(frozen=True)
class RawProfiles:
    """Profiles as arrays before quality control; ``vertical`` is depth (m) or pressure (dbar)."""

    temperature: np.ndarray  # (profile, level), degC
    vertical: np.ndarray  # (profile, level)
    vertical_is_pressure: bool
    latitude: np.ndarray  # (profile,)
    longitude: np.ndarray  # (profile,)
    time: np.ndarray  # (profile,) datetime64[ns]
    value_flag_ok: np.ndarray  # (profile, level) bool: the value's QC flags are accepted
    missing_adjusted: np.ndarray  # (profile, level) bool: an A/D profile's value without its adjusted value
    profile_flag_ok: np.ndarray  # (profile,) bool: position, time and whole-profile flags are accepted
    platform: np.ndarray | None
    standard_name: str
    attrs: dict
    identity: np.ndarray | None = None  # (profile,) Argo (platform, cycle, direction, sampling scheme), or None
    data_mode: np.ndarray | None = None  # (profile,) Argo DATA_MODE character codes ('D', 'A', 'R')
    sampling_scheme: np.ndarray | None = None  # (profile,) Argo VERTICAL_SAMPLING_SCHEME ('' where not given)

    def of_sampling(self, sampling: str) -> np.ndarray:
        """True for the profiles of ``sampling`` ("primary", "secondary" or "all"); no scheme counts as primary."""
        n_profiles = self.latitude.size
        if sampling == "all":
            return np.ones(n_profiles, dtype=bool)
        primary = np.ones(n_profiles, dtype=bool) if self.sampling_scheme is None else np.array(
            [not text or str(text).startswith(_PRIMARY_SCHEME) for text in self.sampling_scheme], dtype=bool)
        return primary if sampling == "primary" else ~primary

    def repeated_cycles(self, rows: np.ndarray) -> np.ndarray:
        """True for the profiles of ``rows`` repeating another's Argo identity, but the most adjusted (then first)."""
        out = np.zeros(rows.size, dtype=bool)
        if self.identity is None or rows.size == 0:
            return out
        keys = self.identity[rows]
        named = np.flatnonzero([key is not None for key in keys])
        if named.size == 0:
            return out
        rank = (np.zeros(named.size, dtype=int) if self.data_mode is None
                else np.array([_MODE_RANK.get(int(m), 2) for m in self.data_mode[rows[named]]]))
        table = pd.DataFrame({"key": keys[named], "rank": rank, "order": np.arange(named.size)})
        kept = table.sort_values(["rank", "order"], kind="stable").drop_duplicates("key", keep="first")
        out[named] = ~table.index.isin(kept.index)
        return out


def read_raw(
    obj: object, names: Mapping[str, str | None], units: str | None, good_flags: Sequence[str]
) -> RawProfiles:
    """Read a path, DataFrame or Dataset of profiles (see :func:`xdepthrecon.read_profiles`)."""
    if isinstance(obj, (str, os.PathLike)):
        return _read_path(Path(obj), names, units, good_flags)
    if isinstance(obj, pd.DataFrame):
        return _read_dataset(_table_dataset(obj), names, units, good_flags)
    if isinstance(obj, xr.Dataset):
        return _read_dataset(obj, names, units, good_flags)
    raise TypeError(
        f"read_profiles expects a path, an xarray Dataset or a pandas DataFrame, got {type(obj).__name__}; "
        "wrap arrays as a DataFrame with one row per measurement (lat, lon, time, depth, temperature)."
    )


def _read_path(path: Path, names, units, good_flags) -> RawProfiles:
    if not path.exists():
        raise FileNotFoundError(f"no profile file at {str(path)!r}")
    if path.suffix.lower() in (".csv", ".txt"):
        return _read_dataset(_table_dataset(pd.read_csv(path)), names, units, good_flags)
    if path.suffix.lower() == ".parquet":
        return _read_dataset(_table_dataset(pd.read_parquet(path)), names, units, good_flags)
    try:
        with cftime_fallback_silenced():
            ds = xr.open_dataset(path)
    except ValueError:  # times that cannot be decoded: decode the ones we need ourselves
        ds = xr.open_dataset(path, decode_times=False)
    with ds:
        return _read_dataset(ds, names, units, good_flags)


def _table_dataset(df: pd.DataFrame) -> xr.Dataset:
    if len(df.columns) == 0:
        raise ValueError("the profile table has no columns; pass a table with one row per measurement and columns "
                         "for latitude, longitude, time, depth (or pressure) and temperature.")
    frame = df.reset_index(drop=isinstance(df.index, pd.RangeIndex))
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    frame.index = pd.RangeIndex(len(frame), name="row")
    return xr.Dataset.from_dataframe(frame)


def _find(ds: xr.Dataset, role: str, explicit: str | None, required: bool = True) -> Hashable | None:
    if explicit is not None:
        if explicit not in ds.variables:
            raise ValueError(
                f"{role}={explicit!r} is not a variable of these profiles; they have: "
                f"{', '.join(map(str, ds.variables))}."
            )
        return explicit
    for name in _names.PROFILE_NAMES[role]:
        if name in ds.variables:
            return name
    if role == "temperature":
        for standard_name in _names.TEMPERATURE_STANDARD_NAMES:
            found = [n for n, v in ds.variables.items() if v.attrs.get("standard_name") == standard_name]
            if len(found) == 1:
                return found[0]
    if required:
        raise ValueError(
            f"no {role} variable found among {', '.join(map(str, ds.variables))}; known names are "
            f"{', '.join(_names.PROFILE_NAMES[role])}. Pass {role}='NAME' to say which one it is."
        )
    return None


def _read_dataset(ds: xr.Dataset, names, units, good_flags) -> RawProfiles:
    t_name = _find(ds, "temperature", names.get("temperature"))
    lat_name = _find(ds, "latitude", names.get("latitude"))
    lon_name = _find(ds, "longitude", names.get("longitude"))
    time_name = _find(ds, "time", names.get("time"))
    z_name, is_pressure = _find_vertical(ds, names)
    platform_name = _find(ds, "platform", None, required=False)
    wanted = {t_name, lat_name, lon_name, time_name, z_name, platform_name, "DATA_MODE"}
    for base in (t_name, z_name):
        wanted |= {f"{base}_QC", f"{base}_qc", f"{base}_ADJUSTED", f"{base}_ADJUSTED_QC", _profile_flag_name(base)}
    wanted |= {f"{time_name}_QC", *_names.PROFILE_POSITION_TIME_FLAGS, *_names.PROFILE_GROUP_COLUMNS,
               _SAMPLING_SCHEME}
    present = [n for n in wanted if n is not None and n in ds.variables]
    with cftime_fallback_silenced():
        sub = xr.decode_cf(ds.reset_coords()[present])
    temperature_var = sub[t_name]
    if temperature_var.ndim not in (1, 2):
        raise ValueError(
            f"temperature {str(t_name)!r} has dims {temperature_var.dims}; expected (profile, level) as in "
            "EN4/Argo files, or one row per measurement as in a table."
        )
    if sub[lat_name].ndim != 1 or sub[lat_name].dims[0] not in temperature_var.dims:
        raise ValueError(
            f"latitude {str(lat_name)!r} has dims {sub[lat_name].dims}, but one value per profile (or per row) "
            f"along one of {temperature_var.dims} was expected."
        )
    profile_dim = sub[lat_name].dims[0]
    level_dim = next((d for d in temperature_var.dims if d != profile_dim), None)
    explicit_t = names.get("temperature") is not None
    explicit_z = names.get("depth") is not None or names.get("pressure") is not None
    columns = _Columns(sub, profile_dim, level_dim, good_flags)
    temperature, t_ok, t_unadjusted = columns.measured(t_name, adjusted=not explicit_t)
    vertical, z_ok, z_unadjusted = columns.measured(z_name, adjusted=not explicit_z)
    missing_adjusted = t_unadjusted | (z_unadjusted & np.isfinite(temperature))
    if not is_pressure:
        vertical = vertical * _depth_factor(sub[z_name])
    profile_ok = columns.profile_flags_ok([f"{time_name}_QC", *_names.PROFILE_POSITION_TIME_FLAGS],
                                          [_profile_flag_name(t_name)])
    latitude = float_values(sub[lat_name])
    longitude = float_values(sub[lon_name])
    time = decoded_times(sub[time_name], time_name)
    platform = strings(sub[platform_name].values) if platform_name is not None else None
    temperature = to_celsius(temperature, units or temperature_var.attrs.get("units"), t_name)
    standard_name = temperature_var.attrs.get("standard_name") or (
        "sea_water_potential_temperature" if str(t_name).startswith(("POTM", "theta")) else "sea_water_temperature"
    )
    value_ok = t_ok & z_ok
    scheme = strings(sub[_SAMPLING_SCHEME].values) if _SAMPLING_SCHEME in sub.variables else None
    identity = _identity(sub, platform, scheme)
    data_mode = flag_codes(sub["DATA_MODE"].values, columns.shape[:1]) if "DATA_MODE" in sub.variables else None
    if level_dim is None:
        extra_keys = {name: sub[name].values for name in (*_names.PROFILE_GROUP_COLUMNS, _SAMPLING_SCHEME)
                      if name in sub.variables}
        return _group_rows(temperature, vertical, is_pressure, latitude, longitude, time, value_ok, missing_adjusted,
                           profile_ok, platform, extra_keys, standard_name, dict(ds.attrs), identity, data_mode,
                           scheme)
    return RawProfiles(temperature, vertical, is_pressure, latitude, longitude, time, value_ok, missing_adjusted,
                       profile_ok, platform, standard_name, dict(ds.attrs), identity, data_mode, scheme)


def _identity(sub: xr.Dataset, platform: np.ndarray | None, scheme: np.ndarray | None) -> np.ndarray | None:
    """Argo's name of each profile: (platform, cycle, direction, vertical sampling scheme); None without them."""
    if platform is None or "CYCLE_NUMBER" not in sub.variables:
        return None
    cycle = float_values(sub["CYCLE_NUMBER"])
    direction = strings(sub["DIRECTION"].values) if "DIRECTION" in sub.variables else np.full(cycle.shape, "A")
    scheme = np.full(cycle.shape, "") if scheme is None else scheme
    out = np.empty(cycle.shape, dtype=object)
    for i, key in enumerate(zip(platform, cycle, direction, scheme)):
        out[i] = key if np.isfinite(key[1]) else None
    return out


def concat(raws: Sequence[RawProfiles]) -> RawProfiles:
    """Profiles of several inputs (already in depth, not pressure) as one, padding the level axis."""
    if len({raw.standard_name for raw in raws}) > 1:
        raise ValueError(
            f"these inputs mix temperatures of standard names {sorted({raw.standard_name for raw in raws})}; "
            "read potential and in-situ temperature separately."
        )
    if len(raws) == 1:
        return raws[0]
    n_levels = max(raw.temperature.shape[1] for raw in raws)

    def stack(field: str, fill) -> np.ndarray:
        arrays = [getattr(raw, field) for raw in raws]
        return np.concatenate([np.pad(a, ((0, 0), (0, n_levels - a.shape[1])), constant_values=fill) for a in arrays])

    def join(field: str, fill) -> np.ndarray | None:
        arrays = [getattr(raw, field) for raw in raws]
        if all(a is None for a in arrays):
            return None
        return np.concatenate([np.full(raw.latitude.shape, fill, dtype=object) if a is None else a.astype(object)
                               for raw, a in zip(raws, arrays)])

    first = raws[0]
    modes = join("data_mode", ord("R"))
    return RawProfiles(
        stack("temperature", np.nan), stack("vertical", np.nan), False,
        *(np.concatenate([getattr(raw, f) for raw in raws]) for f in ("latitude", "longitude", "time")),
        stack("value_flag_ok", False), stack("missing_adjusted", False),
        np.concatenate([raw.profile_flag_ok for raw in raws]), join("platform", ""), first.standard_name,
        {k: v for k, v in first.attrs.items() if all(raw.attrs.get(k) == v for raw in raws[1:])},
        join("identity", None), None if modes is None else modes.astype(np.uint32), join("sampling_scheme", ""),
    )


def _find_vertical(ds: xr.Dataset, names) -> tuple[Hashable, bool]:
    if names.get("depth") is not None and names.get("pressure") is not None:
        raise ValueError("pass depth= or pressure=, not both: profiles have one vertical coordinate.")
    if names.get("pressure") is not None:
        return _find(ds, "pressure", names["pressure"]), True
    name = _find(ds, "depth", names.get("depth"), required=False)
    if name is None:
        name = _find(ds, "pressure", None, required=False)
        if name is None:
            raise ValueError(
                f"no depth or pressure variable found among {', '.join(map(str, ds.variables))}; known names are "
                f"{', '.join(_names.PROFILE_NAMES['depth'] + _names.PROFILE_NAMES['pressure'])}. "
                "Pass depth='NAME' (metres) or pressure='NAME' (dbar)."
            )
        return name, True
    units = ds[name].attrs.get("units")
    return name, units is not None and _names.is_pressure(units)


def _depth_factor(var: xr.DataArray) -> float:
    units = var.attrs.get("units")
    factor = 1.0 if units is None else _names.depth_factor(units)
    if factor is None:
        raise ValueError(
            f"depth units {units!r} of {str(var.name)!r} are not understood; give depth in metres, or "
            "pass pressure='NAME' if it is sea pressure in dbar."
        )
    return factor


def _profile_flag_name(name: Hashable | None) -> str:
    """``PROFILE_POTM_QC`` for ``POTM_CORRECTED``, ``PROFILE_TEMP_QC`` for ``TEMP`` (EN4 and Argo)."""
    return f"PROFILE_{str(name).split('_')[0]}_QC"


class _Columns:
    """Values and flag checks of one dataset, laid out (profile, level) or (row,)."""

    def __init__(self, sub: xr.Dataset, profile_dim: Hashable, level_dim: Hashable | None, good_flags) -> None:
        self.sub = sub
        self.dims = (profile_dim,) if level_dim is None else (profile_dim, level_dim)
        self.shape = tuple(sub.sizes[d] for d in self.dims)
        self.good = np.array([ord(f) for f in good_flags], dtype=np.uint32)

    def values(self, name: Hashable) -> np.ndarray:
        var = self.sub[name]
        if var.dims == self.dims[1:]:  # one set of levels shared by all profiles
            var = var.expand_dims({self.dims[0]: self.shape[0]})
        return float_values(var.transpose(*self.dims))

    def flags_ok(self, name: Hashable, shape: tuple[int, ...]) -> np.ndarray:
        """True where the flag ``name`` is accepted; True everywhere when there is no such flag."""
        if name not in self.sub.variables:
            return np.ones(shape, dtype=bool)
        return np.isin(flag_codes(self.sub[name].values, shape), self.good)

    def measured(self, name: Hashable, adjusted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values and flag checks of ``name``, using Argo ``name_ADJUSTED`` for profiles that have it.

        The third array is True where a profile's adjusted value is used but missing while its raw value is
        present (Argo fills the adjusted value of a bad level): such a value is dropped, and must be counted.
        """
        values = self.values(name)
        ok = self.flags_ok(f"{name}_QC", self.shape) & self.flags_ok(f"{name}_qc", self.shape)
        adjusted_name = f"{name}_ADJUSTED"
        if not adjusted or adjusted_name not in self.sub.variables:
            return values, ok, np.zeros(self.shape, dtype=bool)
        adjusted_values = self.values(adjusted_name)
        adjusted_ok = self.flags_ok(f"{adjusted_name}_QC", self.shape)
        if "DATA_MODE" in self.sub.variables:  # Argo: 'A' and 'D' profiles use adjusted values, even if missing
            mode = flag_codes(self.sub["DATA_MODE"].values, self.shape[:1])
            use = np.isin(mode, [ord("A"), ord("D")])
        else:
            use = np.isfinite(adjusted_values).reshape(self.shape[0], -1).any(axis=1)
        use = use.reshape((-1,) + (1,) * (len(self.shape) - 1))
        unadjusted = use & np.isfinite(values) & ~np.isfinite(adjusted_values)
        return np.where(use, adjusted_values, values), np.where(use, adjusted_ok, ok), unadjusted

    def profile_flags_ok(self, position_time: Sequence[str], whole_profile: Sequence[str]) -> np.ndarray:
        shape = self.shape[:1]
        ok = np.ones(shape, dtype=bool)
        for name in dict.fromkeys(position_time):
            ok &= self.flags_ok(name, shape)
        reject = np.array([ord(f) for f in _names.PROFILE_REJECT_FLAGS], dtype=np.uint32)
        for name in whole_profile:
            if name in self.sub.variables:
                ok &= ~np.isin(flag_codes(self.sub[name].values, shape), reject)
        return ok


def _group_rows(temperature, vertical, is_pressure, latitude, longitude, time, value_ok, missing_adjusted,
                row_profile_ok, platform, extra_keys, standard_name, attrs, identity, data_mode,
                scheme) -> RawProfiles:
    """Group table rows into profiles by position, time (and platform, cycle, direction); sort each by depth."""
    keys = {"latitude": latitude, "longitude": longitude, "time": time, **extra_keys}
    if platform is not None:
        keys["platform"] = platform
    group = pd.DataFrame(keys).groupby(list(keys), sort=False, dropna=False).ngroup().to_numpy()
    order = np.lexsort((vertical, group))
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]]) if order.size else order
    counts = np.diff(np.r_[starts, order.size])
    n_profiles, n_levels = starts.size, int(counts.max()) if counts.size else 0
    level = np.arange(order.size) - np.repeat(starts, counts)
    profile = np.repeat(np.arange(n_profiles), counts)

    def scatter(values: np.ndarray, fill) -> np.ndarray:
        out = np.full((n_profiles, n_levels), fill, dtype=values.dtype)
        out[profile, level] = values[order]
        return out

    first = order[starts]
    profile_ok = np.minimum.reduceat(row_profile_ok[order], starts) if order.size else row_profile_ok[:0]
    return RawProfiles(
        scatter(temperature, np.nan), scatter(vertical, np.nan), is_pressure, latitude[first], longitude[first],
        time[first], scatter(value_ok, False), scatter(missing_adjusted, False), profile_ok.astype(bool),
        platform[first] if platform is not None else None, standard_name, attrs,
        *(None if per_row is None else per_row[first] for per_row in (identity, data_mode, scheme)),
    )
