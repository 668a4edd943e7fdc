"""Times of profiles and cubes: dates of any cube axis, the position in the year, and the window of each cube time.

A climatological cube (cftime times in year 0 or 1, as Ferret climatologies have) is placed in the leap
year 2000 and compared by time of year only, on a leap-year calendar (1 March is day 61 every year).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd

_DAY_NS = 86_400 * 10**9
#: Length (ns) of the leap year that times of year are measured on.
LEAP_YEAR_NS = 366 * _DAY_NS


def as_profile_times(times: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cube times as datetime64 and whether the axis is a climatology (cftime in year 0 or 1).

    Climatological dates are placed in the leap year 2000 (year 0 of the proleptic Gregorian
    calendar is a leap year too), keeping month, day and time of day.
    """
    values = np.asarray(times)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]"), False
    if values.size and all(hasattr(t, "calendar") for t in values.ravel()):
        climatology = all(t.year <= 1 for t in values.ravel())
        try:
            dates = [_dt.datetime(2000 if climatology else t.year, t.month, t.day, t.hour, t.minute, t.second,
                                  t.microsecond) for t in values.ravel()]
        except ValueError as err:
            raise ValueError(
                f"cube times {values[:3]} ... cannot be placed on the real calendar ({err}); convert the "
                "time axis to datetime64 first."
            ) from None
        return np.array(dates, dtype="datetime64[ns]").reshape(values.shape), climatology
    if values.size == 0:
        return values.astype("datetime64[ns]"), False
    raise TypeError(f"cube times of dtype {values.dtype} are not dates; standardise the cube first.")


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
        profiles = np.asarray(profile_times).astype("datetime64[ns]")
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
