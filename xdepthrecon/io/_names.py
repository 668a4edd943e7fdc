"""Tables of the names and units that real ocean files use.

Matching is data, not ``if`` chains: each table lists what we accept, most specific first. The
functions that read files (``standardize`` for cubes, later the profile and SST readers) look here
after cf_xarray's own criteria (``standard_name``, ``axis``, ``positive``, ``units``) found nothing.
"""

from __future__ import annotations

import re

#: CF standard names of sea temperature, in order of preference.
TEMPERATURE_STANDARD_NAMES: tuple[str, ...] = (
    "sea_water_potential_temperature",
    "sea_water_temperature",
    "sea_water_conservative_temperature",
)

#: Variable names of sea temperature in GLORYS, NEMO, EN4, Argo, WOA and Ferret files.
TEMPERATURE_NAMES: tuple[str, ...] = (
    "thetao",
    "votemper",
    "POTM_CORRECTED",
    "POTM",
    "TEMP",
    "temp",
    "temperature",
    "theta",
    "t_an",
    "t_mn",
    "to",
)

#: CF standard names of sea surface temperature, in order of preference.
SST_STANDARD_NAMES: tuple[str, ...] = (
    "sea_surface_temperature",
    "sea_surface_foundation_temperature",
    "sea_surface_subskin_temperature",
    "sea_surface_skin_temperature",
    "surface_temperature",
)

#: Variable names of sea surface temperature in OSTIA, COADS, CMIP and reanalysis files.
SST_NAMES: tuple[str, ...] = ("analysed_sst", "sst", "SST", "tos", "surface_temperature", "sea_surface_temperature")

#: Quantities that sit beside temperature in ocean files and are not temperature: per quantity, regular
#: expressions (full match, case-insensitive) of variable names, CF standard names and units. A variable
#: that matches any of them is never taken for temperature unless named by ``temperature=``.
OTHER_QUANTITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "salinity": {
        "name": (r"so", r"sos", r"s", r"sa", r"sss", r"sal", r"salt", r".*salinity", r"sal_.*", r"psal.*", r"vosaline",
                 r"s_an", r"s_mn"),
        "standard_name": (r".*salinity.*",),
        "units": (r"psu", r"pss", r"pss-78", r"practical salinity units?", r"1e-3", r"0\.001", r"10\^-3", r"g/kg",
                  r"g kg-1", r"g kg\^-1", r"ppt", r"‰"),
    },
    "density": {
        "name": (r"rho.*", r"dens", r"density", r"sigma.*", r"pden", r"potdens", r"vosigma.*"),
        "standard_name": (r"sea_water_.*density.*", r"sea_water_sigma_.*"),
        "units": (r"kg m-3", r"kg/m3", r"kg/m\^3", r"kg m\^-3", r"kg m\*\*-3", r"kg\.m-3"),
    },
    "velocity": {
        "name": (r"u", r"v", r"w", r"uo", r"vo", r"wo", r"uos", r"vos", r"ucur", r"vcur", r"vozocrtx", r"vomecrty",
                 r"vovecrtz", r".*velocity", r"speed", r"current.*"),
        "standard_name": (r".*sea_water_.*velocity.*", r"sea_water_speed", r".*_current.*"),
        "units": (r"m/s", r"m s-1", r"m s\^-1", r"m\.s-1", r"cm/s", r"cm s-1", r"m s\*\*-1"),
    },
}

#: Regular expressions for axis coordinate names, per canonical axis, when metadata is missing.
AXIS_NAME_PATTERNS: dict[str, tuple[str, ...]] = {
    "time": (r"time", r"TIME\d*", r"t", r"JULD", r"TAX.*"),
    "depth": (r"depth", r"deptht", r"DEPTH", r"DEPH", r"lev", r"level", r"z", r"ZAX.*", r"st_ocean", r"nav_lev"),
    "latitude": (r"latitude", r"lat", r"LATITUDE", r"LAT", r"nav_lat", r"y", r"YAX.*", r"COADSY", r"yt_ocean"),
    "longitude": (r"longitude", r"lon", r"LONGITUDE", r"LON", r"nav_lon", r"x", r"XAX.*", r"COADSX", r"xt_ocean"),
}

#: cf_xarray keys (coordinate criteria first, then axis) for each canonical axis.
CF_AXIS_KEYS: dict[str, tuple[str, ...]] = {
    "time": ("time", "T"),
    "depth": ("vertical", "Z"),
    "latitude": ("latitude", "Y"),
    "longitude": ("longitude", "X"),
}

_CELSIUS = ("degc", "deg c", "degrees c", "degree c", "degrees_c", "degree_c", "celsius",
            "degrees celsius", "degree celsius", "degree_celsius", "degrees_celsius", "c", "°c", "deg_c")
_KELVIN = ("k", "kelvin", "degk", "deg k", "degrees k", "degree_k", "degrees_k", "degree_kelvin", "degrees_kelvin")
_METRES = ("m", "metre", "metres", "meter", "meters", "m (positive down)")
_CENTIMETRES = ("cm", "centimeter", "centimeters", "centimetre", "centimetres")
_PRESSURE = ("dbar", "decibar", "decibars", "db")


def _clean(units: str) -> str:
    return " ".join(str(units).strip().lower().split())


def temperature_scale(units: str) -> str | None:
    """Return ``"degC"`` or ``"K"`` for a temperature units string, or None if it is neither."""
    cleaned = _clean(units)
    if cleaned in _CELSIUS:
        return "degC"
    if cleaned in _KELVIN:
        return "K"
    return None


def other_quantity(name: str, standard_name: str | None, units: str | None) -> str | None:
    """What a variable is if its name, standard name or units say it is not temperature (see ``OTHER_QUANTITIES``).

    Returns e.g. ``"salinity (units 'psu')"``, or None when nothing marks it as another quantity.
    """
    given = {"standard_name": standard_name, "units": None if units is None else _clean(units), "name": name}
    for key in ("standard_name", "units", "name"):
        if given[key] is None:
            continue
        for quantity, criteria in OTHER_QUANTITIES.items():
            if any(re.fullmatch(pattern, str(given[key]), flags=re.IGNORECASE) for pattern in criteria[key]):
                return f"{quantity} ({key} {str(given[key])!r})"
    return None


def depth_factor(units: str) -> float | None:
    """Return the factor converting a vertical coordinate in ``units`` to metres, or None."""
    cleaned = _clean(units)
    if cleaned in _METRES:
        return 1.0
    if cleaned in _CENTIMETRES:
        return 0.01
    return None


def is_pressure(units: str) -> bool:
    """True if ``units`` is a sea pressure unit (dbar), which is not a depth."""
    return _clean(units) in _PRESSURE


def matches_axis_name(name: str, axis: str) -> bool:
    """True if ``name`` is a known coordinate name for the canonical ``axis``."""
    return any(re.fullmatch(pattern, str(name)) for pattern in AXIS_NAME_PATTERNS[axis])


#: Variable (or column) names of profile data per role, most specific first: our canonical form,
#: EN4 (``POTM_CORRECTED``, ``DEPH_CORRECTED``, ``JULD``), Argo and argopy (``TEMP``, ``PRES``, ``JULD``/``TIME``)
#: and common spellings in tables. Argo ``*_ADJUSTED`` companions are looked up beside the name found.
PROFILE_NAMES: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature", "POTM_CORRECTED", "POTM", "thetao", "TEMP", "temp", "Temperature", "theta"),
    "depth": ("depth", "DEPH_CORRECTED", "DEPH", "DEPTH", "Depth", "depth_m", "z"),
    "pressure": ("pressure", "PRES", "pres", "PRESSURE", "Pressure"),
    "latitude": ("latitude", "LATITUDE", "lat", "LAT", "Latitude"),
    "longitude": ("longitude", "LONGITUDE", "lon", "LON", "long", "Longitude"),
    "time": ("time", "JULD", "TIME", "date", "datetime", "Time"),
    "platform": ("platform", "PLATFORM_NUMBER", "platform_number", "wmo", "WMO"),
}

#: Per-profile QC flags of position and time in Argo, EN4 and argopy data.
PROFILE_POSITION_TIME_FLAGS: tuple[str, ...] = ("POSITION_QC", "JULD_QC", "TIME_QC")

#: Whole-profile QC flag values that reject a profile: EN4 ``PROFILE_POTM_QC == '4'``, Argo ``PROFILE_TEMP_QC ==
#: 'F'`` (no good level).
PROFILE_REJECT_FLAGS: tuple[str, ...] = ("4", "F")

#: Table columns that, beside position, time and platform, tell profiles apart (argopy's point layout).
PROFILE_GROUP_COLUMNS: tuple[str, ...] = ("CYCLE_NUMBER", "DIRECTION")
