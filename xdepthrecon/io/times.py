"""Times of profiles and cubes: dates of any calendar, the position in the year, and the window of each cube time.

Cube and profile times pass through one conversion, :func:`as_profile_times`, so they land on the same
axis. A climatology (dates in year 0 or 1, as Ferret climatologies have) is placed in the leap year 2000
and compared by time of year only, on a leap-year calendar (1 March is day 61 every year).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd

_DAY_NS = 86_400 * 10**9
#: Length (ns) of the leap year that times of year are measured on.
LEAP_YEAR_NS = 366 * _DAY_NS


def as_profile_times(times: np.ndarray, what: str = "cube times") -> tuple[np.ndarray, bool]:
    """Dates of any calendar as datetime64[ns] and whether they are a climatology (all in year 0 or 1).

    The one conversion of cube and profile times, so both land on the same axis. cftime dates of every
    calendar (standard, proleptic_gregorian, noleap/365_day, all_leap/366_day, 360_day, julian) keep
    their calendar fields: year, month, day and time of day. A climatology (every date in year 0 or 1,
    as Ferret climatologies and the bundled atlas have) is placed in the leap year 2000, keeping month,
    day and time of day (year 0 of the proleptic Gregorian calendar is a leap year too). Missing times
    (None, NaN, NaT) become NaT.

    Parameters
    ----------
    times
        datetime64 of any unit, or cftime dates (object array).
    what
        What the times are, for error messages.

    Returns
    -------
    tuple of (numpy.ndarray, bool)
        datetime64[ns] of the shape of ``times``, and whether they are a climatology.

    Raises
    ------
    ValueError
        For a date that is not a date of the real calendar (30 February of a 360_day calendar, 29 February
        of a non-leap year in all_leap or julian), or outside the years 1678-2261 that datetime64[ns] holds,
        instead of shifting it: the message names the date and what to do.
    TypeError
        When the times are not dates.
    """
    values = np.asarray(times)
    if values.dtype.kind == "O":
        present = [t for t in values.ravel() if not _missing(t)]
        if not present:
            return np.full(values.shape, np.datetime64("NaT", "ns")), False
        if all(hasattr(t, "calendar") for t in present):
            return _cftime_as_datetime64(values, what)
        if any(hasattr(t, "calendar") for t in present):
            raise TypeError(f"{what} mix cftime dates with other values; give one kind of dates.")
        if all(isinstance(t, (_dt.datetime, np.datetime64)) for t in present):
            values = np.array([np.datetime64("NaT") if _missing(t) else t for t in values.ravel()],
                              dtype="datetime64[us]").reshape(values.shape)
    if np.issubdtype(values.dtype, np.datetime64):
        valid = values[~np.isnat(values)]
        years = valid.astype("datetime64[Y]").astype("int64") + 1970
        climatology = bool(valid.size) and bool((years <= 1).all())
        if climatology:
            months = values.astype("datetime64[M]")
            within = values - months.astype(values.dtype)
            values = np.datetime64("2000-01", "M") + months.astype("int64") % 12 + within
        return _checked_ns(values, what), climatology
    if values.size == 0:
        return values.astype("datetime64[ns]"), False
    raise TypeError(f"{what} of dtype {values.dtype} are not dates; give datetime64 or cftime dates.")


def _missing(t: object) -> bool:
    return t is None or (isinstance(t, float) and np.isnan(t)) or t is pd.NaT or (
        isinstance(t, np.datetime64) and np.isnat(t))


def _cftime_as_datetime64(values: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    """cftime dates (object array, None/NaN for missing) by their calendar fields; see :func:`as_profile_times`."""
    codes, unique = pd.factorize(values.ravel())  # missing times get code -1
    climatology = all(t.year <= 1 for t in unique)
    dates = np.empty(len(unique), dtype="datetime64[us]")
    for i, t in enumerate(unique):
        try:
            dates[i] = _dt.datetime(2000 if climatology else t.year, t.month, t.day, t.hour, t.minute, t.second,
                                    t.microsecond)
        except ValueError:
            raise ValueError(
                f"{what}: {t} ({t.calendar} calendar) is not a date of the real calendar"
                + (" (a climatology is placed in the leap year 2000)" if climatology else "")
                + ", and would have to be shifted to become one; convert the times to datetime64 yourself, e.g. "
                "ds.convert_calendar('proleptic_gregorian', align_on='year') for a 360_day calendar, or drop "
                "these dates."
            ) from None
    out = np.full(codes.shape, np.datetime64("NaT", "us"))
    out[codes >= 0] = dates[codes[codes >= 0]]
    return _checked_ns(out.reshape(values.shape), what), climatology


#: The dates datetime64[ns] holds (a cast beyond them wraps around silently in numpy).
_NS_RANGE = (np.datetime64("1677-09-22", "us"), np.datetime64("2262-04-11", "us"))


def _checked_ns(values: np.ndarray, what: str) -> np.ndarray:
    """datetime64 of any unit as datetime64[ns], refusing dates outside what nanoseconds hold."""
    valid = values[~np.isnat(values)].astype("datetime64[us]")
    outside = valid[(valid < _NS_RANGE[0]) | (valid > _NS_RANGE[1])]
    if outside.size:
        raise ValueError(
            f"{what}: {outside[0]} is outside the years 1678-2261 that the profile and cube time axes "
            "(datetime64[ns]) hold; a climatology must have every date in year 0 or 1. Shift the years "
            "into that range first."
        )
    return values.astype("datetime64[ns]")


def year_position(times: np.ndarray) -> np.ndarray:
    """Nanoseconds since the start of the year, on a leap-year calendar (1 March is day 61 every year)."""
    years = times.astype("datetime64[Y]")
    offset = (times - years.astype("datetime64[ns]")).astype("int64")
    year = years.astype("int64") + 1970
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    return offset + np.where(~leap & (offset >= 59 * _DAY_NS), _DAY_NS, 0)


def profile_windows(cube_times: np.ndarray, profile_times: np.ndarray, window="7D") -> list[np.ndarray]:
    """Indices of the profiles in the time window of each cube time, as :func:`~xdepthrecon.grid_profiles` matches them.

    Lets a caller grid one cube time at a time from only its profiles (bounded memory on long cubes).

    Parameters
    ----------
    cube_times, profile_times
        Cube times (datetime64 or cftime; year 0/1 cftime is a climatology) and profile times.
    window
        As in :func:`~xdepthrecon.grid_profiles`.

    Returns
    -------
    list of numpy.ndarray
        One integer index array per cube time.
    """
    windows = TimeWindows(np.asarray(cube_times), np.asarray(profile_times), window)
    return [windows.members(t) for t in range(len(windows.cube))]


class TimeWindows:
    """Which profiles fall in the window of each cube time (one searchsorted per cube time)."""

    def __init__(self, cube_times: np.ndarray, profile_times: np.ndarray, window) -> None:
        cube, climatology = as_profile_times(cube_times)
        repeated = pd.Index(cube).duplicated()
        if repeated.any():
            raise ValueError(f"the cube's times repeat {[str(t) for t in cube[repeated][:3]]}: each would take the "
                             "same profiles; remove the duplicates (e.g. cube.drop_duplicates('time')).")
        profiles, _ = as_profile_times(profile_times, "profile times")
        self.period: int | None = None
        if isinstance(window, str) and window.strip().lower() == "month":
            months_cube, months_profiles = cube.astype("datetime64[M]").astype("int64"), profiles.astype(
                "datetime64[M]").astype("int64")
            if climatology:
                months_cube, months_profiles = months_cube % 12, months_profiles % 12
            self.cube, self.half, positions = months_cube, 0, months_profiles
            self.description = "same calendar month" + (" of any year (climatology)" if climatology else "")
        else:
            width = _window_ns(window)
            self.half = width // 2
            if climatology:
                self.cube, positions, self.period = year_position(cube), year_position(profiles), LEAP_YEAR_NS
                self.description = f"within +-{pd.Timedelta(self.half, 'ns')} in day of year (climatology)"
            else:
                self.cube, positions = cube.astype("int64"), profiles.astype("int64")
                self.description = f"within +-{pd.Timedelta(self.half, 'ns')} of the cube time"
        self.order = np.argsort(positions, kind="stable")
        self.sorted = positions[self.order]

    def members(self, t: int) -> np.ndarray:
        """Indices of the profiles in the window of cube time ``t``."""
        centre = int(self.cube[t])
        if self.period is not None and 2 * self.half >= self.period:
            return self.order
        shifts = (0,) if self.period is None else (-self.period, 0, self.period)
        parts = [self.order[np.searchsorted(self.sorted, centre + s - self.half, side="left"):
                            np.searchsorted(self.sorted, centre + s + self.half, side="right")] for s in shifts]
        return np.concatenate(parts)


def _window_ns(window) -> int:
    try:
        width = pd.Timedelta(window)
    except (ValueError, TypeError):
        raise ValueError(
            f"window={window!r} is not a time span; pass e.g. '7D', '12h', a timedelta, or 'month'."
        ) from None
    if width < pd.Timedelta(0):
        raise ValueError(f"window={window!r} is negative; pass a full window width such as '7D'.")
    return int(width.value)
