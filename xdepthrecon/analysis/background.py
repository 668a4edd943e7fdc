"""The background an analysis departs from: the training data's seasonal cycle at each cell and level, plus
the SST anomaly carried down.

Far from any profile, the observations say nothing; there the best guess is what the training data say
about that place and season, corrected by the surface. The background is, per level (channel) ``c``,

``T_b(t, c, cell) = a(c, cell) + sum_k b_k(c, cell) cos(k w t) + c_k(c, cell) sin(k w t)
+ sum_j beta_j(c, lat) SST'_j(t, cell)``

- the seasonal coefficients are least-squares fits of the training field at each cell (as the
  climatology baseline fits temperature); cells without training values (held-out regions, land) take
  them interpolated from the cells around them;
- ``SST'`` is the SST minus its own seasonal fit over the same training cells (filled the same way),
  0 where the SST is missing;
- ``SST'_j`` are the horizontal scale bands of ``SST'`` (:func:`~xdepthrecon.stats.scales.scale_bands`, an
  octave apart from the training grid's spacing up to ``largest_scale_km``; one band, ``SST'`` itself, without);
  a band's mean is over the cells that have an SST; a cell without SST has no SST term (filling it from
  the bands around it measured worse than none on the atlas's COADS gaps);
- ``beta_j`` are the slopes of the field's departure from its seasonal fit on those bands, pooled per latitude
  band (:func:`~xdepthrecon.stats.regression.pooled_slopes`). A surface anomaly's broad scales reach deep, its
  small scales (the mixed layer's own anomalies, the satellite's noise) mostly do not: one slope for all
  scales carries the small ones down as strongly as the broad ones. On the eddying nature run, at 300-1000 m,
  it gave the SST-regressed field 17x the truth's power at 4-8 cells; the bands' slopes give 0.8x and
  reduce the regression's RMSE by about a fifth in every depth band (docs/performance.md).
- with ``slope_harmonics``, each ``beta_j`` may also vary with annual harmonics: a surface anomaly reaches down
  to the mixed layer's depth, deep in winter and shallow in summer. Whether a level's slopes vary is chosen by
  cross-validation over time, as their ridge is (:attr:`SeasonalBackground.seasonal`; docs/performance.md).

It is the background of the ``sst_regression`` baseline, kept on the training grid (as buffers saved with
the analysis) and evaluated on any grid by the nearest stored cell.

A background fitted on the very cells it is evaluated at is better there than in a region the training data
did not cover (in-sample); :func:`cross_validated_background` gives the training cells backgrounds fitted
without their own block of the map (or of the times), as wrong as a held-out region's (or season's): the
analysis fits its covariances and calibrates its error with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from xdepthrecon.analysis.sst_slopes import SlopeChoice, SlopeGrid, slope_choice, sst_bands
from xdepthrecon.io.cube import is_global
from xdepthrecon.stats.interpolation import fill_cells
from xdepthrecon.stats.regression import MIN_PAIRS, level_residual, normal_equations, pooled_slopes
from xdepthrecon.stats.scales import octave_scales_km, scale_bands
from xdepthrecon.stats.seasonal import fit_seasonal, seasonal_design

#: Latitude band width (degrees) that shares one SST slope.
BAND = 10.0
#: Largest length scale (km) of the SST anomaly's scale bands: broader anomalies share one slope.
LARGEST_SCALE_KM = 500.0


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
    scales_km
        Length scales (km, increasing) that split the SST anomaly into bands, each with its own slopes; empty:
        one slope per level and latitude.
    slope_harmonics
        Annual harmonics the slopes may vary with (0: constant slopes).
    """

    def __init__(self, harmonics: int, channels: int, latitude_size: int, longitude_size: int,
                 scales_km: Sequence[float] = (), slope_harmonics: int = 0) -> None:
        super().__init__()
        self.harmonics = int(harmonics)
        self.slope_harmonics = int(slope_harmonics)
        self.scales_km = tuple(float(scale) for scale in scales_km)
        if any(b <= a for a, b in zip(self.scales_km, self.scales_km[1:])) or any(s <= 0 for s in self.scales_km):
            raise ValueError(f"scales_km must be positive and increasing, got {self.scales_km}")
        regressors = 1 + 2 * self.harmonics
        self.register_buffer("latitude", torch.zeros(latitude_size, dtype=torch.float64))
        self.register_buffer("longitude", torch.zeros(longitude_size, dtype=torch.float64))
        self.register_buffer("field", torch.zeros(regressors, channels, latitude_size, longitude_size))
        self.register_buffer("sst", torch.zeros(regressors, latitude_size, longitude_size))
        self.register_buffer("slope", torch.zeros(len(self.scales_km) + 1, channels, latitude_size))
        self.register_buffer("seasonal_slope", torch.zeros(2 * self.slope_harmonics, len(self.scales_km) + 1, channels,
                                                           latitude_size))
        self.register_buffer("seasonal", torch.zeros(channels, dtype=torch.bool))
        self.register_buffer("covered", torch.zeros(latitude_size, longitude_size, dtype=torch.bool))
        self.register_buffer("ridge", torch.full((channels,), float("inf"), dtype=torch.float64))

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {"harmonics": self.harmonics, "channels": self.field.shape[1],
                "latitude_size": self.latitude.numel(), "longitude_size": self.longitude.numel(),
                "scales_km": list(self.scales_km), "slope_harmonics": self.slope_harmonics}

    @property
    def choice(self) -> SlopeChoice:
        """Each level's ridge and seasonal slopes, as fitted (pass it to fit again on other data)."""
        return SlopeChoice(self.ridge.tolist(), self.seasonal.tolist())

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        slope = state_dict.get(prefix + "slope")
        if slope is not None and slope.ndim == 2:  # saved before the SST's scale bands: one band
            state_dict[prefix + "slope"] = slope[None]
            state_dict.setdefault(prefix + "ridge", torch.full(slope.shape[:1], float("inf"), dtype=torch.float64))
        if slope is not None:  # saved before the seasonal slopes: constant ones
            state_dict.setdefault(prefix + "seasonal_slope", torch.zeros_like(self.seasonal_slope))
            state_dict.setdefault(prefix + "seasonal", torch.zeros_like(self.seasonal))
        super()._load_from_state_dict(state_dict, prefix, *args)

    @classmethod
    def fit(cls, field: xr.DataArray, sst: xr.DataArray, *, harmonics: int = 1, band: float = BAND,
            largest_scale_km: float | None = LARGEST_SCALE_KM, min_pairs: int = MIN_PAIRS, slope_harmonics: int = 0,
            choice: SlopeChoice | None = None) -> SeasonalBackground:
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
        largest_scale_km
            Largest length scale (km) of the SST anomaly's scale bands (octaves from the grid's spacing; see
            the module docstring); None: one slope for all scales.
        slope_harmonics
            Annual harmonics the slopes may vary with; 0: constant slopes.
        choice
            Each level's ridge of its scale-band slopes and whether they vary with the season (only with
            ``slope_harmonics``); None: chosen by cross-validation over the training times (:attr:`choice`).
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
        latitude, longitude = field.latitude.values, field.longitude.values
        scales = () if largest_scale_km is None else octave_scales_km(latitude, longitude, largest_scale_km)
        grid = SlopeGrid(latitude, longitude, scales, band, min_pairs)
        sst_coefficients = fit_seasonal(surface.reshape(times, -1), design).reshape(-1, rows, cols)
        bands = sst_bands(surface, design, sst_coefficients, grid)
        season = seasonal_design(field.time.values, slope_harmonics)
        ridges, seasons = slope_choice(values, surface, design, season, grid=grid, choice=choice)
        slope = np.zeros((season.shape[1], len(scales) + 1, channels, rows))
        for channel in range(channels):
            terms = season.shape[1] if seasons[channel] else 1
            sums = normal_equations(level_residual(values[:, channel], coefficients[:, channel], design), bands,
                                    season[:, :terms])
            fitted = pooled_slopes(sums, latitude=latitude, band=band, min_pairs=min_pairs, ridge=ridges[channel],
                                   groups=terms)
            slope[:terms, :, channel] = fitted.reshape(terms, len(scales) + 1, rows)
        out = cls(harmonics, channels, rows, cols, scales, slope_harmonics)
        out.latitude.copy_(torch.tensor(latitude, dtype=torch.float64))
        out.longitude.copy_(torch.tensor(longitude, dtype=torch.float64))
        extended = _extended_down(coefficients).reshape(-1, rows, cols)
        out.field.copy_(torch.from_numpy(_filled(extended, latitude, longitude).reshape(coefficients.shape)))
        out.sst.copy_(torch.from_numpy(_filled(sst_coefficients, latitude, longitude)))
        out.slope.copy_(torch.from_numpy(slope[0]))
        out.seasonal_slope.copy_(torch.from_numpy(slope[1:]))
        out.seasonal.copy_(torch.from_numpy(seasons))
        out.covered.copy_(torch.from_numpy(trained.any(axis=0)))
        out.ridge.copy_(torch.from_numpy(ridges))
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
        climate = self.climate_at(times, latitude, longitude)
        surface = torch.as_tensor(np.asarray(sst, dtype=np.float32), device=self.field.device)
        anomaly = surface - torch.einsum("tp,pyx->tyx", design, self.sst[:, rows][..., cols])
        bands = scale_bands(anomaly, torch.isfinite(anomaly), self.scales_km, latitude=latitude, longitude=longitude,
                            periodic=is_global(np.asarray(longitude)))
        bands = torch.where(torch.isfinite(anomaly)[:, None], bands, 0.0)  # no SST, no SST term
        season = torch.from_numpy(seasonal_design(np.asarray(times), self.slope_harmonics)[:, 1:]).float()
        slope = self.slope[None, :, :, rows] + torch.einsum("tm,mjcy->tjcy", season.to(self.field.device),
                                                            self.seasonal_slope[..., rows])
        return climate + torch.einsum("tjcy,tjyx->tcyx", slope, bands)

    def climate_at(self, times: Any, latitude: np.ndarray, longitude: np.ndarray) -> torch.Tensor:
        """The seasonal cycle alone ``(time, channel, latitude, longitude)`` on a grid: the background of cells
        without SST (see :meth:`at`)."""
        design = torch.from_numpy(seasonal_design(np.asarray(times), self.harmonics)).float().to(self.field.device)
        rows, cols = self._cells(latitude, longitude)
        return torch.einsum("tp,pcyx->tcyx", design, self.field[:, :, rows][..., cols])

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


def cross_validated_background(field: xr.DataArray, sst: xr.DataArray, **options: Any) -> xr.DataArray:
    """The backgrounds of :func:`cross_validated_backgrounds` (same options), without their climate."""
    return cross_validated_backgrounds(field, sst, **options).background


def cross_validated_backgrounds(field: xr.DataArray, sst: xr.DataArray, *, harmonics: int = 1, band: float = BAND,
                                largest_scale_km: float | None = LARGEST_SCALE_KM, slope_harmonics: int = 0,
                                choice: SlopeChoice | None = None, block: float = 30.0, folds: int = 4, seed: int = 0,
                                over: str = "space", on_fit: Callable[[], None] | None = None) -> xr.Dataset:
    """Backgrounds of the training data, each fitted without its own block of the map or of the times, with and
    without their SST term.

    ``over="space"``: the map is cut into ``block``-degree squares, dealt at random into ``folds`` folds;
    each fold's cells take the background :meth:`SeasonalBackground.fit` gives from the other folds (filled
    into the fold's cells as into a held-out region): what a new region sees. ``over="time"``: the time
    steps are dealt into ``folds`` folds; each fold's time steps take the background fitted to the other
    time steps at every cell: what a new season or year in a trained region sees. A fold that holds all the
    data (one time step; a region within one block) has nothing to hold out from: it takes the fit to all the
    data, as in-sample as :meth:`SeasonalBackground.fit`. The folds share the slope choice (each level's ridge
    and seasonal slopes): ``choice`` (e.g. the fit to all the data's :attr:`SeasonalBackground.choice`), or
    chosen once on all the data. ``on_fit`` is called once per fold (``folds``
    calls, e.g. to advance a progress bar). Returns ``background`` and ``climate`` (the same fits' seasonal cycle
    alone, as at a cell without SST: :meth:`SeasonalBackground.climate_at`), each ``(time, channel, latitude,
    longitude)`` like ``field`` (float32, finite everywhere).
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
    out = {name: np.zeros(field.shape, dtype=np.float32) for name in ("background", "climate")}
    settings = {"harmonics": harmonics, "band": band, "largest_scale_km": largest_scale_km,
                "slope_harmonics": slope_harmonics}
    if choice is None:
        choice = SeasonalBackground.fit(field, sst, **settings).choice
    for fold in range(folds):
        here = (fold_of == fold).broadcast_like(field.isel(channel=0)).transpose("time", *dims[2:]).values
        if here.any():
            others = field.where(~(fold_of == fold))
            if not np.isfinite(others.values).any():
                others = field  # one fold holds all the data: nothing to hold out
            fitted = SeasonalBackground.fit(others, sst, **settings, choice=choice)
            times = field.time.values
            values = {"background": fitted.at(times, latitude, longitude,
                                              sst.transpose(*dims[:1], *dims[2:]).values),
                      "climate": fitted.climate_at(times, latitude, longitude)}
            taken = np.broadcast_to(here[:, None], field.shape)
            for name, value in values.items():
                out[name][taken] = value.numpy()[taken]
        if on_fit is not None:
            on_fit()
    coords = {d: field[d] for d in dims if d in field.coords}
    return xr.Dataset({name: (dims, value) for name, value in out.items()}, coords=coords)


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

