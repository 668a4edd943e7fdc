"""The background an analysis departs from: the training data's seasonal cycle at each cell and level, plus
the SST anomaly carried down.

Far from any profile, the observations say nothing; there the best guess is what the training data say
about that place and season, corrected by the surface. The background is, per level (channel) ``c``,

``T_b(t, c, cell) = a(c, cell) + sum_k b_k(c, cell) cos(k w t) + c_k(c, cell) sin(k w t) + beta(c, lat) SST'(t, cell)``

- the seasonal coefficients are least-squares fits of the training field at each cell (as the
  climatology baseline fits temperature); cells without training values (held-out regions, land) take
  them interpolated from the cells around them;
- ``SST'`` is the SST minus its own seasonal fit over the same training cells (filled the same way),
  0 where the SST is missing;
- ``beta`` is the slope of the field's departure from its seasonal fit on ``SST'``, pooled per latitude
  band.

It is the background of the ``sst_regression`` baseline, kept on the training grid (as buffers saved with
the analysis) and evaluated on any grid by the nearest stored cell.

A background fitted on the very cells it is evaluated at is better there than in a region the training data
did not cover (in-sample); :func:`cross_validated_background` gives the training cells backgrounds fitted
without their own block of the map (or of the times), as wrong as a held-out region's (or season's): the
analysis fits its covariances and calibrates its error with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from xdepthrecon.io.cube import is_global
from xdepthrecon.stats.interpolation import fill_cells
from xdepthrecon.stats.regression import MIN_PAIRS, level_slopes
from xdepthrecon.stats.seasonal import fit_seasonal, seasonal_design

#: Latitude band width (degrees) that shares one SST slope.
BAND = 10.0


class SeasonalBackground(nn.Module):
    """Seasonal cycle of a field plus SST regression on a stored grid (see the module docstring).

    Build one with :meth:`fit`; the constructor makes an empty one of the given sizes (for loading).

    Parameters
    ----------
    harmonics
        Annual harmonics of the seasonal fits.
    channels
        Channels of the field (depth levels).
    latitude_size, longitude_size
        Size of the stored grid.
    """

    def __init__(self, harmonics: int, channels: int, latitude_size: int, longitude_size: int) -> None:
        super().__init__()
        self.harmonics = int(harmonics)
        regressors = 1 + 2 * self.harmonics
        self.register_buffer("latitude", torch.zeros(latitude_size, dtype=torch.float64))
        self.register_buffer("longitude", torch.zeros(longitude_size, dtype=torch.float64))
        self.register_buffer("field", torch.zeros(regressors, channels, latitude_size, longitude_size))
        self.register_buffer("sst", torch.zeros(regressors, latitude_size, longitude_size))
        self.register_buffer("slope", torch.zeros(channels, latitude_size))
        self.register_buffer("covered", torch.zeros(latitude_size, longitude_size, dtype=torch.bool))

    @property
    def config(self) -> dict[str, int]:
        """Constructor arguments, JSON-serialisable."""
        return {"harmonics": self.harmonics, "channels": self.field.shape[1],
                "latitude_size": self.latitude.numel(), "longitude_size": self.longitude.numel()}

    @classmethod
    def fit(cls, field: xr.DataArray, sst: xr.DataArray, *, harmonics: int = 1, band: float = BAND,
            min_pairs: int = MIN_PAIRS) -> SeasonalBackground:
        """Fit the background to a training field.

        Parameters
        ----------
        field
            ``(time, channel, latitude, longitude)`` training field (temperature: channel = depth level), NaN
            where it has no data.
        sst
            ``(time, latitude, longitude)`` SST (degC) on the same grid and times.
        harmonics, band, min_pairs
            Annual harmonics; latitude band width (degrees) and fewest pairs for a band's own SST slope.
        """
        field = field.transpose("time", "channel", "latitude", "longitude")
        values = np.asarray(field.values, dtype="float64")
        if not np.isfinite(values).any():
            raise ValueError("the training field holds no finite value; the background needs training data.")
        times, channels, rows, cols = values.shape
        design = seasonal_design(field.time.values, harmonics)
        coefficients = fit_seasonal(values.reshape(times, -1), design).reshape(-1, channels, rows, cols)
        trained = np.isfinite(values).any(axis=1)
        surface = np.where(trained, np.asarray(sst.transpose("time", "latitude", "longitude").values, "float64"),
                           np.nan)
        sst_coefficients = fit_seasonal(surface.reshape(times, -1), design).reshape(-1, rows, cols)
        sst_anomaly = surface - np.einsum("tp,pyx->tyx", design, sst_coefficients)
        latitude = field.latitude.values
        slope = np.zeros((channels, rows))
        for channel in range(channels):
            slope[channel] = level_slopes(values[:, channel], coefficients[:, channel], design, sst_anomaly,
                                          latitude=latitude, band=band, min_pairs=min_pairs)
        out = cls(harmonics, channels, rows, cols)
        out.latitude.copy_(torch.tensor(latitude, dtype=torch.float64))
        out.longitude.copy_(torch.tensor(field.longitude.values, dtype=torch.float64))
        extended = _extended_down(coefficients).reshape(-1, rows, cols)
        out.field.copy_(torch.from_numpy(_filled(extended, latitude, field.longitude.values)
                                          .reshape(coefficients.shape)))
        out.sst.copy_(torch.from_numpy(_filled(sst_coefficients, latitude, field.longitude.values)))
        out.slope.copy_(torch.from_numpy(slope))
        out.covered.copy_(torch.from_numpy(trained.any(axis=0)))
        return out

    def at(self, times: Any, latitude: np.ndarray, longitude: np.ndarray, sst: np.ndarray) -> torch.Tensor:
        """The background field ``(time, channel, latitude, longitude)`` on a grid, in field units.

        Parameters
        ----------
        times
            Times (datetime64 or cftime) of the grid.
        latitude, longitude
            The grid's coordinates (degrees); each cell takes the nearest stored cell (longitude wraps when
            the stored grid is global; beyond a regional grid's edge the edge cell).
        sst
            ``(time, latitude, longitude)`` SST in degC on the grid, NaN where missing.
        """
        design = torch.from_numpy(seasonal_design(np.asarray(times), self.harmonics)).float().to(self.field.device)
        rows, cols = self._cells(latitude, longitude)
        field = self.field[:, :, rows][..., cols]
        climate = torch.einsum("tp,pcyx->tcyx", design, field)
        surface = torch.as_tensor(np.asarray(sst, dtype=np.float32), device=self.field.device)
        anomaly = torch.nan_to_num(surface - torch.einsum("tp,pyx->tyx", design, self.sst[:, rows][..., cols]))
        return climate + self.slope[:, rows][None, :, :, None] * anomaly[:, None]

    def covered_at(self, latitude: np.ndarray, longitude: np.ndarray) -> torch.Tensor:
        """Whether the training data covered the stored cell nearest to each cell of a grid (latitude,
        longitude); where not, the background was filled from the cells around it."""
        rows, cols = self._cells(latitude, longitude)
        return self.covered[rows][:, cols]

    def _cells(self, latitude: np.ndarray, longitude: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and columns of the stored cells nearest to a grid's (see :meth:`at`)."""
        rows = torch.from_numpy(_nearest(self.latitude.cpu().numpy(), np.asarray(latitude), periodic=False))
        stored_longitude = self.longitude.cpu().numpy()
        cols = torch.from_numpy(_nearest(stored_longitude, np.asarray(longitude), periodic=is_global(stored_longitude)))
        return rows.to(self.field.device), cols.to(self.field.device)


def cross_validated_background(field: xr.DataArray, sst: xr.DataArray, *, harmonics: int = 1, band: float = BAND,
                               block: float = 30.0, folds: int = 4, seed: int = 0, over: str = "space",
                               on_fit: Callable[[], None] | None = None) -> xr.DataArray:
    """Backgrounds of the training data, each fitted without its own block of the map or of the times.

    ``over="space"``: the map is cut into ``block``-degree squares, dealt at random into ``folds`` folds;
    each fold's cells take the background :meth:`SeasonalBackground.fit` gives from the other folds (filled
    into the fold's cells as into a held-out region): what a new region sees. ``over="time"``: the time
    steps are dealt into ``folds`` folds; each fold's time steps take the background fitted to the other
    time steps at every cell: what a new season or year in a trained region sees. A fold that holds all the
    data (one time step; a region within one block) has nothing to hold out from: it takes the fit to all the
    data, as in-sample as :meth:`SeasonalBackground.fit`. ``on_fit`` is called once per fold (``folds``
    calls, e.g. to advance a progress bar). Returns ``(time, channel, latitude, longitude)`` like ``field``
    (float32, finite everywhere).
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2 for a cross-validated background, got {folds}")
    if over not in ("space", "time"):
        raise ValueError(f"over={over!r} is not 'space' or 'time'")
    dims = ("time", "channel", "latitude", "longitude")
    field = field.transpose(*dims)
    latitude, longitude = field.latitude.values, field.longitude.values
    rng = np.random.default_rng(seed)
    if over == "space":
        rows = np.floor((latitude + 90.0) / block).astype(int)
        cols = np.floor((np.mod(longitude + 180.0, 360.0)) / block).astype(int)
        deal = rng.integers(0, folds, size=(rows.max() + 1, cols.max() + 1))
        fold_of = xr.DataArray(deal[rows[:, None], cols[None, :]], dims=("latitude", "longitude"))
    else:
        fold_of = xr.DataArray(rng.permutation(field.sizes["time"]) % folds, dims=("time",))
    out = np.zeros(field.shape, dtype=np.float32)
    for fold in range(folds):
        here = (fold_of == fold).broadcast_like(field.isel(channel=0)).transpose("time", *dims[2:]).values
        if here.any():
            others = field.where(~(fold_of == fold))
            if not np.isfinite(others.values).any():
                others = field  # one fold holds all the data: nothing to hold out
            fitted = SeasonalBackground.fit(others, sst, harmonics=harmonics, band=band)
            values = fitted.at(field.time.values, latitude, longitude, sst.transpose(*dims[:1], *dims[2:]).values)
            taken = np.broadcast_to(here[:, None], out.shape)
            out[taken] = values.numpy()[taken]
        if on_fit is not None:
            on_fit()
    return xr.DataArray(out, dims=dims, coords={d: field[d] for d in dims if d in field.coords})


def _extended_down(coefficients: np.ndarray) -> np.ndarray:
    """``coefficients (regressor, channel, lat, lon)`` with a cell below the bottom (NaN where the channel
    above is finite; channels ordered top down) taking the value above it: every channel then has the
    same cells to fill, so one horizontal interpolation serves them all."""
    out = coefficients.copy()
    for channel in range(1, out.shape[1]):
        out[:, channel] = np.where(np.isnan(out[:, channel]), out[:, channel - 1], out[:, channel])
    return out


def _filled(values: np.ndarray, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """``values (level, lat, lon)`` with every NaN cell filled from the cells around it; float32."""
    wanted = np.isnan(values)
    if wanted.any():
        filled = fill_cells(values, wanted, latitude, longitude, periodic=is_global(longitude))
        values = np.where(wanted, filled, values)
    return np.nan_to_num(values).astype(np.float32)


def _nearest(stored: np.ndarray, wanted: np.ndarray, periodic: bool) -> np.ndarray:
    """Index of the nearest ``stored`` coordinate (increasing) for each ``wanted`` one."""
    if periodic:
        wanted = stored[0] + np.mod(wanted - stored[0], 360.0)
        extended = np.append(stored, stored[0] + 360.0)
    else:
        extended = stored
    right = np.clip(np.searchsorted(extended, wanted), 1, len(extended) - 1)
    left = right - 1
    index = np.where(np.abs(extended[right] - wanted) < np.abs(wanted - extended[left]), right, left)
    return (index % len(stored)).astype(np.int64)

