"""Find, check and standardise ocean temperature cubes and surface temperature fields.

Every other function of the library works on one canonical form: a Dataset holding
``thetao(time, depth, latitude, longitude)`` in degC, depth in metres positive down and
increasing, latitude increasing, longitude in [-180, 180) and increasing, land as NaN.
:func:`standardize` turns the layouts real files come in into that form, lazily;
:func:`standardize_surface` does the same for a surface field such as OSTIA SST,
giving ``sst(time, latitude, longitude)``.

A field without any time information (an annual climatology, a snapshot of unknown date) comes out
*undated*: a ``time`` dimension of length 1 without a coordinate (see :func:`is_undated`). No date
is made up for it, because a made-up date would be trusted by time windows and seasonal fits; every
function of the library accepts an undated cube and says what it does with it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from xdepthrecon.io import _axes, _names
from xdepthrecon._provenance import describe_call, with_history

#: Dimension order of a standardised cube.
CANONICAL_DIMS: tuple[str, ...] = ("time", "depth", "latitude", "longitude")
#: Dimension order of a standardised surface field.
SURFACE_DIMS: tuple[str, ...] = ("time", "latitude", "longitude")

_KELVIN_OFFSET = 273.15
#: Range (degC) of sea temperature: the 1st and 99th percentiles of a sample of the field must lie in it.
_SEA_RANGE = (-3.0, 40.0)
#: Plausible range (K) of sea temperature; a median in it, without units, is Kelvin data.
_KELVIN_RANGE = (265.0, 320.0)
#: Without units, a sample whose 1st percentile is above this (degC) looks like salinity (psu) more than temperature.
_SALINITY_LIKE = 30.0
_SAMPLE_SIZE = 100_000
_PACKING = frozenset({"scale_factor", "add_offset", "_FillValue", "missing_value"})  #: in attrs: values not decoded yet


@dataclass(frozen=True)
class _Field:
    """What one kind of field is called in files and in our canonical form."""

    role: str
    argument: str
    output: str
    dims: tuple[str, ...]
    standard_names: tuple[str, ...]
    names: tuple[str, ...]
    default_standard_name: str
    hint: str


_CUBE = _Field(
    role="temperature", argument="temperature", output="thetao", dims=CANONICAL_DIMS,
    standard_names=_names.TEMPERATURE_STANDARD_NAMES, names=_names.TEMPERATURE_NAMES,
    default_standard_name="sea_water_temperature",
    hint="A surface field is not a cube: use xdepthrecon.standardize_surface for SST.",
)
_SURFACE = _Field(
    role="sea surface temperature", argument="variable", output="sst", dims=SURFACE_DIMS,
    standard_names=_names.SST_STANDARD_NAMES, names=_names.SST_NAMES,
    default_standard_name="sea_surface_temperature",
    hint="A depth cube is not a surface field: use xdepthrecon.standardize for it, or select one depth.",
)


def standardize(
    ds: xr.Dataset | xr.DataArray,
    *,
    temperature: str | None = None,
    depth: str | None = None,
    latitude: str | None = None,
    longitude: str | None = None,
    time: str | None = None,
    units: str | None = None,
) -> xr.Dataset:
    """Return the canonical form of an ocean temperature cube.

    Variables and axes are found by explicit argument first, then through cf_xarray (``standard_name``, ``axis``,
    ``positive``, ``units``), then from a table of names used by GLORYS, EN4, WOA and Ferret files; a lone variable
    is taken as the temperature unless its name, ``standard_name`` or ``units`` say it is salinity, density or
    velocity (tables in ``xdepthrecon.io._names``). Values packed or masked by attributes (``scale_factor``,
    ``_FillValue``, ...: a file opened with ``mask_and_scale=False``) are decoded first, as :func:`xarray.decode_cf`
    does. After unit handling, a sample of the first time step must lie within -3 .. 40 degC (1st to 99th
    percentile), and without units not all above 30 (that is salinity, in psu). Nothing is computed on dask-backed
    data, except that sample when the temperature has no units (pass ``units=`` to avoid it); data in memory are
    always checked.

    Parameters
    ----------
    ds
        A Dataset holding a temperature cube, or the cube itself as a DataArray.
    temperature
        Name of the temperature variable, where it cannot be found from metadata or where its
        name says otherwise (its units and values are still checked).
    depth, latitude, longitude, time
        Names of the dimensions holding each axis, where they cannot be found from metadata.
    units
        Units of the temperature (``"degC"`` or ``"K"``); overrides the file's ``units`` attribute.

    Returns
    -------
    xarray.Dataset
        ``thetao(time, depth, latitude, longitude)`` in degC, float, with CF attributes on the
        variable and its coordinates and a new ``history`` line. Other variables are dropped.
        A cube without a time axis gets a length-1 ``time`` dimension, with the file's scalar
        time coordinate as its value where there is one. Without one the cube is *undated*: the
        dimension has no coordinate, rather than a made-up date (:func:`is_undated`).
        :func:`~xdepthrecon.sample_profiles` gives profiles of an undated cube the time NaT, and
        :func:`~xdepthrecon.grid_profiles` puts every profile in its one time step. Longitudes are wrapped to
        [-180, 180) by rolling the grid, so a regional grid that crosses the dateline comes out
        in two parts.

    Raises
    ------
    ValueError
        When the temperature or an axis cannot be found or is ambiguous, the only candidate is
        another quantity (salinity, density, velocity), an axis is not monotonic or repeats values,
        units are unknown or missing on Kelvin-like values, values lie outside the range of sea
        temperature, or all data are NaN. The message lists the variables found.
    TypeError
        When the input is not an xarray object or the temperature is not numeric.

    Examples
    --------
    >>> import xarray as xr, xdepthrecon
    >>> raw = xr.open_dataset("ocean_atlas_subset.nc", decode_times=False)  # doctest: +SKIP
    >>> cube = xdepthrecon.standardize(raw, units="degC")  # doctest: +SKIP
    >>> cube.thetao.dims  # doctest: +SKIP
    ('time', 'depth', 'latitude', 'longitude')
    """
    call = describe_call("xdepthrecon.standardize", temperature=temperature, depth=depth, latitude=latitude,
                         longitude=longitude, time=time, units=units)
    axes = {"time": time, "depth": depth, "latitude": latitude, "longitude": longitude}
    return _standardize(ds, _CUBE, temperature, axes, units, call)


def standardize_surface(
    ds: xr.Dataset | xr.DataArray,
    *,
    variable: str | None = None,
    latitude: str | None = None,
    longitude: str | None = None,
    time: str | None = None,
    units: str | None = None,
) -> xr.Dataset:
    """Return the canonical form of a sea surface temperature field, such as OSTIA or COADS SST.

    The same rules as :func:`standardize` apply (Kelvin converted, longitudes wrapped and
    rolled, latitude increasing, missing time added, lazy on dask input).

    Parameters
    ----------
    ds
        A Dataset holding the surface field, or the field itself as a DataArray.
    variable
        Name of the SST variable, where it cannot be found from metadata.
    latitude, longitude, time
        Names of the dimensions holding each axis, where they cannot be found from metadata.
    units
        Units of the field (``"degC"`` or ``"K"``); overrides the file's ``units`` attribute.

    Returns
    -------
    xarray.Dataset
        ``sst(time, latitude, longitude)`` in degC with CF attributes and a ``history`` line.

    Examples
    --------
    >>> ostia = xr.open_dataset("ostia_monthly.nc")  # doctest: +SKIP
    >>> xdepthrecon.standardize_surface(ostia).sst.attrs["units"]  # doctest: +SKIP
    'degC'
    """
    call = describe_call("xdepthrecon.standardize_surface", variable=variable, latitude=latitude,
                         longitude=longitude, time=time, units=units)
    axes = {"time": time, "latitude": latitude, "longitude": longitude}
    return _standardize(ds, _SURFACE, variable, axes, units, call)


def _standardize(
    ds: xr.Dataset | xr.DataArray,
    field: _Field,
    variable: str | None,
    explicit_axes: dict[str, str | None],
    units: str | None,
    call: str,
) -> xr.Dataset:
    dataset = _as_dataset(ds, field)
    name = _find_variable(dataset, field, variable)
    source = dataset[name]
    if _PACKING & source.attrs.keys():  # not decoded (opened with mask_and_scale=False): decode now
        source = xr.decode_cf(dataset[[name]], decode_times=False, decode_timedelta=False, decode_coords=False)[name]
    if not np.issubdtype(source.dtype, np.number) or np.issubdtype(source.dtype, np.complexfloating):
        raise TypeError(
            f"{field.role} variable {str(name)!r} has dtype {source.dtype}, not a real number type; "
            "decode the file (xr.open_dataset decodes by default) or convert with .astype('float32')."
        )
    spatial = field.dims[1:]
    if source.ndim < len(spatial):
        raise ValueError(
            f"{str(name)!r} is {source.ndim}-D with dims {tuple(map(str, source.dims))}, but "
            f"({', '.join(field.dims)}) or ({', '.join(spatial)}) was expected. {field.hint}"
        )
    found = _axes.find_axes(dataset, source, field.dims, explicit_axes)
    missing = [axis for axis in spatial if axis not in found]
    if missing:
        raise ValueError(
            f"could not find the {' and '.join(missing)} axis of {str(name)!r} among its dims "
            f"{tuple(map(str, source.dims))}: no CF metadata (standard_name, axis, positive, units) or known "
            f"name identifies it. Pass {', '.join(f'{m}=' + repr('DIM') for m in missing)} to say which "
            f"dimension it is. {field.hint}"
        )
    da = _axes.to_canonical_dims(dataset, source, found, field.dims)
    if "depth" in field.dims:
        da = _axes.standard_depth(da)
    da = _axes.standard_latitude(da)
    da = _axes.standard_longitude(da)
    da = _axes.standard_time(da)
    da = _to_celsius(da, name, units, dataset)
    standard_name = source.attrs.get("standard_name")
    da.attrs = {
        "standard_name": standard_name if standard_name in field.standard_names else field.default_standard_name,
        "long_name": source.attrs.get("long_name", field.role),
        "units": "degC",
    }
    da.encoding = {}
    da = _axes.set_axis_attrs(da)
    out = xr.Dataset({field.output: da.rename(field.output)}, attrs=with_history(dataset.attrs, call))
    return out.transpose(*field.dims)


def _as_dataset(ds: xr.Dataset | xr.DataArray, field: _Field) -> xr.Dataset:
    if isinstance(ds, xr.DataArray):
        return ds.to_dataset(name=ds.name if ds.name is not None else field.output)
    if isinstance(ds, xr.Dataset):
        return ds
    raise TypeError(
        f"expected an xarray Dataset or DataArray, got {type(ds).__name__}; "
        "open files with xr.open_dataset(path) or wrap arrays with xr.DataArray(values, dims=..., coords=...)."
    )


def _describe_variables(dataset: xr.Dataset) -> str:
    """One line per data variable: name, dims, standard_name, units and the range of a sample (read here)."""
    parts = []
    for var_name, var in dataset.data_vars.items():
        label = f"{var_name}{tuple(str(d) for d in var.dims)}"
        for key in ("standard_name", "units"):
            if key in var.attrs:
                label += f" {key}={var.attrs[key]!r}"
        parts.append(f"{label} {_value_range(var)}")
    return "; ".join(parts) if parts else "no data variables"


def _value_range(var: xr.DataArray) -> str:
    if not np.issubdtype(var.dtype, np.number) or var.size == 0:
        return f"dtype {var.dtype}"
    stride = max(1, int(np.ceil((var.size / _SAMPLE_SIZE) ** (1 / max(var.ndim, 1)))))
    values = np.asarray(var[tuple(slice(None, None, stride) for _ in var.dims)].values, dtype="float64")
    if not np.isfinite(values).any():
        return "all NaN"
    return f"range {np.nanmin(values):.4g} .. {np.nanmax(values):.4g}"


def _find_variable(dataset: xr.Dataset, field: _Field, explicit: str | None) -> Hashable:
    if explicit is not None:
        if explicit not in dataset.data_vars:
            raise ValueError(f"{field.argument}={explicit!r} is not a data variable of this dataset; it has: "
                             f"{_describe_variables(dataset)}.")
        return explicit
    name = _match_variable(dataset, field)
    var = dataset[name]
    other = _names.other_quantity(str(name), var.attrs.get("standard_name"), var.attrs.get("units"))
    if other is not None:
        raise ValueError(f"the only {field.role} candidate {str(name)!r} is {other}, not {field.role}. Variables "
                         f"found: {_describe_variables(dataset)}. Pass {field.argument}='NAME' naming the "
                         f"{field.role} variable (its units and values are checked).")
    return name


def _match_variable(dataset: xr.Dataset, field: _Field) -> Hashable:
    by_standard_name = dataset.cf.standard_names
    for standard_name in field.standard_names:
        found = [n for n in by_standard_name.get(standard_name, []) if n in dataset.data_vars]
        if found:
            return _axes.single(field.role, found, field.argument, f"standard_name {standard_name!r}")
    found = [n for n in field.names if n in dataset.data_vars]
    if found:
        return _axes.single(field.role, found, field.argument, f"a known {field.role} name")
    if len(dataset.data_vars) == 1:
        return next(iter(dataset.data_vars))
    raise ValueError(
        f"no {field.role} variable found: none has a standard_name ({', '.join(field.standard_names)}) or a "
        f"known name ({', '.join(field.names)}). Seen: {_describe_variables(dataset)}. "
        f"Pass {field.argument}='NAME' to say which one it is."
    )


def _sample(da: xr.DataArray) -> np.ndarray:
    """Read at most about ``_SAMPLE_SIZE`` values, spread over the field, from the first time step."""
    first = da.isel(time=0)
    stride = max(1, int(np.ceil((first.size / _SAMPLE_SIZE) ** 0.5)))
    return np.asarray(first.isel(latitude=slice(None, None, stride), longitude=slice(None, None, stride)).values)


def _to_celsius(da: xr.DataArray, name: Hashable, units: str | None, dataset: xr.Dataset) -> xr.DataArray:
    given = units if units is not None else da.attrs.get("units")
    if not np.issubdtype(da.dtype, np.floating):
        da = da.astype("float32")
    scale = "degC" if given is None else _names.temperature_scale(given)
    if scale is None:
        other = _names.other_quantity(str(name), None, given)
        raise ValueError(
            f"temperature units {given!r} of {str(name)!r} are not understood{f', they say {other}' if other else ''}; "
            "accepted are degC and K (with their usual spellings). Convert the data or pass units='degC' or "
            f"units='K'; if {str(name)!r} is not the temperature, pass temperature= naming the temperature "
            f"variable. Variables found: {_describe_variables(dataset)}."
        )
    if isinstance(da.data, np.ndarray) and da.size and np.all(np.isnan(da.values)):
        _raise_all_nan(name)
    if given is None or isinstance(da.data, np.ndarray):
        _check_values(_sample(da), name, given, scale, dataset)
    if scale == "K":
        da = da - da.dtype.type(_KELVIN_OFFSET)
    return da


def _check_values(sample: np.ndarray, name: Hashable, given: str | None, scale: str, dataset: xr.Dataset) -> None:
    """Refuse a sample that is not sea temperature in ``scale``: Kelvin-like without units, or out of range."""
    if np.all(np.isnan(sample)):
        if given is None:
            _raise_all_nan(name)
        return
    if given is None:
        median = float(np.nanmedian(sample))
        if _KELVIN_RANGE[0] <= median <= _KELVIN_RANGE[1]:
            raise ValueError(
                f"{str(name)!r} has no units attribute and its values (median {median:.2f}) look like "
                "Kelvin; pass units='K' to convert to degC, or units='degC' if they really are Celsius."
            )
    offset = _KELVIN_OFFSET if scale == "K" else 0.0
    low, high = np.nanpercentile(sample, [1, 99]) - offset
    if low < _SEA_RANGE[0] or high > _SEA_RANGE[1]:
        how = f"in {given!r}" if given is not None else "it has no units and looks like neither degC nor K"
        raise ValueError(
            f"{str(name)!r} is not sea temperature: {how}, its values range {low:.4g} .. {high:.4g} degC "
            f"(1st to 99th percentile), outside {_SEA_RANGE[0]:g} .. {_SEA_RANGE[1]:g} degC. Check for undecoded "
            "scale_factor/add_offset or fill values and the units (pass units=), or pass temperature= naming the "
            f"temperature variable. Variables found: {_describe_variables(dataset)}."
        )
    if given is None and low > _SALINITY_LIKE:
        raise ValueError(
            f"{str(name)!r} has no units and its values range {low:.4g} .. {high:.4g} (1st to 99th percentile): "
            "that is the range of salinity (psu), not of sea temperature, which is colder somewhere in almost any "
            "field. Pass units='degC' if it really is temperature, or temperature= naming the temperature "
            f"variable. Variables found: {_describe_variables(dataset)}."
        )


def _raise_all_nan(name: Hashable) -> None:
    raise ValueError(f"{str(name)!r} is all NaN: there is no ocean data in it. Check the fill value "
                     "(_FillValue/missing_value) and that the region and depths you selected hold ocean.")


def as_cube(ds: xr.Dataset | xr.DataArray) -> xr.Dataset:
    """Return ``ds`` unchanged when it is already a canonical cube (axes included), else :func:`standardize` it."""
    if (
        isinstance(ds, xr.Dataset)
        and "thetao" in ds.data_vars
        and ds.thetao.dims == CANONICAL_DIMS and 0 not in ds.thetao.shape
        and ds.thetao.attrs.get("units") == "degC" and not _PACKING & ds.thetao.attrs.keys()
        and ds.depth.attrs.get("positive") == "down"
        and all(np.all(np.diff(ds[axis].values) > 0) for axis in CANONICAL_DIMS[1:] if axis in ds.coords)
        and np.all((ds.longitude.values >= -180.0) & (ds.longitude.values < 180.0))
        and not ("time" in ds.coords and np.issubdtype(ds.time.dtype, np.number))  # times not decoded
    ):
        return ds
    return standardize(ds)


def is_undated(ds: xr.Dataset | xr.DataArray) -> bool:
    """True for an undated cube: a ``time`` dimension of length 1 without a coordinate.

    :func:`standardize` returns one for a field without any time information, such as an annual
    climatology or a snapshot of unknown date.
    """
    return "time" in ds.dims and "time" not in ds.coords and ds.sizes["time"] == 1


def is_global(longitude: np.ndarray) -> bool:
    """True when a regular longitude axis covers the whole circle, so that it wraps around."""
    values = np.asarray(longitude, dtype="float64")
    if values.size < 3:
        return False
    step = np.diff(values)
    return bool(np.allclose(step, step[0], rtol=1e-3) and abs(values.size * step[0] - 360.0) < 1e-3 * 360.0)
