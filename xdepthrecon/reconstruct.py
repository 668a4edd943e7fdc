"""Reconstruct full-depth temperature from sparse profiles and surface temperature with a trained model.

For each time step, the gridded profiles and the aligned SST become the condition; an ensemble of
latents is sampled over the whole domain at once, the denoiser running on overlapping tiles (all
tiles and members batched) whose outputs are blended at every step, so tiles share one coherent
sample and no seam shows; global grids wrap in longitude. The estimate is the members' first clean estimate
(from the noisiest level: the network's estimate of the mean given the condition, which its training draws
every patch at and the model's gates and error models are calibrated for), its correction of the guess gated;
the decoded members, moved alike onto it and scaled to the calibrated error, give the spread. Time steps are
computed lazily, one dask task each.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import replace
from typing import NamedTuple

import dask
import dask.array as dsa
import numpy as np
import torch
import xarray as xr

from xdepthrecon import checkpoint
from xdepthrecon._allocator import relax_heap_trimming
from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import CANONICAL_DIMS, as_cube, is_global, is_undated
from xdepthrecon.analysis.classical import Analysis, AnalysisInputs, missing_sst
from xdepthrecon.diffusion.guidance import ConditionedDenoiser, Replacement
from xdepthrecon.diffusion.latent import LatentDiffusion
from xdepthrecon.diffusion.samplers import SamplingOptions, sample
from xdepthrecon.evaluation.predictions import CALIBRATED_MEMBERS, MEMBERS_ATTRIBUTE
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.io.times import profile_windows
from xdepthrecon.io.sst import align_sst
from xdepthrecon.tiling import Tiling, tile_centres
from xdepthrecon.training.loop import pick_device


def _template(grid: xr.Dataset, analysis: Analysis) -> xr.Dataset:
    """The grid as a canonical Dataset at the analysis's levels (with ``thetao`` when the grid has it)."""
    depth = analysis.depth.cpu().numpy()
    if is_undated(grid):
        raise ValueError("the grid has no date (an undated cube): reconstruct needs the time of year for the "
                         "seasonal background and the profiles' time windows; give it one, e.g. "
                         "grid.assign_coords(time=[np.datetime64('2020-07-01')]).")
    if "thetao" in grid.data_vars:
        cube = as_cube(grid)
        analysis.check_levels(cube.depth.values)
        return cube
    missing = [name for name in ("time", "latitude", "longitude") if name not in grid.coords]
    if missing:
        raise ValueError(f"the grid has no {', '.join(missing)} coordinate; pass a canonical cube or a Dataset with "
                         "time, latitude and longitude coordinates (latitude and longitude increasing, "
                         "longitude in [-180, 180)).")
    for axis in ("latitude", "longitude"):
        if np.any(np.diff(grid[axis].values) <= 0):
            raise ValueError(f"the grid's {axis} must increase; use ds.sortby('{axis}') or xdepthrecon.standardize.")
    template = xr.Dataset(coords={"time": grid.time, "depth": ("depth", depth.copy(), {"units": "m",
                                                                                      "positive": "down"}),
                                  "latitude": grid.latitude, "longitude": grid.longitude}, attrs=grid.attrs)
    if "ocean" in grid.data_vars:
        template["ocean"] = _ocean_mask(grid.ocean, template)
    return template


def _ocean_mask(ocean: xr.DataArray, template: xr.Dataset) -> xr.DataArray:
    """A grid's boolean ``ocean`` as (time, depth, lat, lon) on the template: kept by level where the grid has
    the template's levels, else a column is ocean at every level where it is ocean at any."""
    if ocean.dtype != bool:
        raise TypeError(f"the grid's 'ocean' must be boolean (True over the ocean), got {ocean.dtype}; e.g. "
                        "grid['ocean'] = cube.thetao.notnull()")
    if "depth" in ocean.dims and not (ocean.sizes["depth"] == template.sizes["depth"] and np.allclose(
            ocean.depth.values, template.depth.values)):
        ocean = ocean.any("depth")
    ocean = ocean.drop_vars("depth", errors="ignore").broadcast_like(template.time).broadcast_like(template.depth)
    return ocean.transpose("time", "depth", "latitude", "longitude")


def _valid_cells(template: xr.Dataset, surface: np.ndarray) -> np.ndarray:
    """Valid (ocean, above the bottom) cells (depth, lat, lon) of one time step: from ``thetao``, else from the
    grid's ``ocean``, else the SST's land."""
    if "thetao" in template.data_vars:
        return np.asarray(template.thetao.notnull().values[0])
    if "ocean" in template.data_vars:
        return np.asarray(template.ocean.values[0])
    return np.broadcast_to(~np.isnan(surface)[None], (template.sizes["depth"], *surface.shape[-2:]))


def _generator(seed: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


class _Step(NamedTuple):
    """One time step's arrays: gridded observations (depth, lat, lon), SST (lat, lon), valid cells and the
    grid's coordinates, time and day of year."""

    x: np.ndarray
    x_mask: np.ndarray
    sst: np.ndarray
    valid: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    times: np.ndarray
    day_of_year: float


def _inputs(analysis: Analysis, step: _Step, device: torch.device) -> AnalysisInputs:
    """The analysis inputs of one time step (a batch of one); the climate only where the SST has gaps."""
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None].to(device)  # noqa: E731
    sst = step.sst.reshape(-1, *step.sst.shape[-2:])[:1]
    background = analysis.background_at(step.times, step.latitude, step.longitude, sst).to(device)
    inputs = AnalysisInputs(as_tensor(step.x), as_tensor(step.x_mask) > 0, as_tensor(sst), background,
                            as_tensor(step.latitude), as_tensor(step.longitude), as_tensor(step.valid.any(axis=0)) > 0)
    if analysis.gap_departures is None or not missing_sst(inputs).any():
        return inputs
    return inputs._replace(climate=analysis.climate_at(step.times, step.latitude, step.longitude).to(device))


@torch.no_grad()
def _analysis_step(analysis: Analysis, step: _Step, device: torch.device) -> np.ndarray:
    """The classical analysis of one time step: mean and calibrated error (2, depth, lat, lon)."""
    guess = analysis(_inputs(analysis, step, device))
    variance = analysis.error_variance(guess, analysis.coverage(step.latitude, step.longitude))
    stats = torch.cat([guess.mean, variance.sqrt()]).cpu().numpy()
    return np.where(step.valid, stats, np.nan).astype(np.float32)


@torch.no_grad()
def _ensemble_step(model: LatentDiffusion, step: _Step, options: SamplingOptions, generator: torch.Generator,
                   device: torch.device) -> np.ndarray:
    """Ensemble mean, standard deviation (ddof 1) and, with ``keep_members``, the members of one time step:
    (2 [+ members], depth, lat, lon), NaN outside the valid cells."""
    members = options.members
    inputs = _inputs(model.analysis, step, device)
    model.warn_sst_gaps(inputs)
    prepared = model.prepare(inputs, with_variance=True)
    height, width = step.x.shape[-2:]
    tiling = Tiling(height, width, options.tile, options.overlap, periodic=is_global(step.longitude))
    centres = [torch.from_numpy(c).float().to(device) for c in tile_centres(tiling, step.latitude, step.longitude)]
    context = {"latitude": centres[0].repeat_interleave(members), "longitude": centres[1].repeat_interleave(members),
               "day_of_year": torch.full((len(centres[0]) * members,), step.day_of_year, device=device)}
    denoiser = ConditionedDenoiser(model, prepared.condition.expand(members, -1, -1, -1), context, tiling=tiling,
                                   batch_size=options.batch_size, fast=options.fast)
    project = Replacement(model, prepared, inputs.x, inputs.mask) if options.replace else None
    residuals, first = sample(denoiser, (members, *prepared.base.shape[1:]), model.schedule, steps=options.steps,
                              sampler=options.sampler, eta=options.eta, generator=generator, device=device,
                              project=project, return_first=True)
    mean = np.zeros(step.valid.shape, dtype=np.float64)
    squares = np.zeros(step.valid.shape, dtype=np.float64)
    kept = []
    base = model.decode_latent(prepared.base)
    for count, residual in enumerate(residuals, start=1):  # one member decoded at a time: memory ~ a few fields
        decoded = model.decode_residual(residual[None], prepared, base)
        if options.replace:
            decoded = torch.where(inputs.mask, inputs.x, decoded)
        values = np.where(step.valid, decoded[0].cpu().numpy(), np.nan).astype(np.float32)
        delta = values - mean
        mean += delta / count
        squares += delta * (values - mean)
        if options.keep_members:
            kept.append(values)
    variance = squares / (members - 1) if members > 1 else np.zeros(step.valid.shape)
    guess = prepared.guess.mean[0].cpu().numpy()
    estimate = model.decode_residual(first.mean(dim=0, keepdim=True), prepared, base)[0].cpu().numpy()
    estimate = np.where(step.valid, estimate, np.nan).astype(np.float64)  # the network's one-step mean
    shift = mean - model.gated(torch.from_numpy(estimate), torch.from_numpy(guess.astype(np.float64)),
                               prepared.density_class[0], prepared.gaps[0].cpu()).numpy()
    if options.replace:  # observed values stay as observed
        shift[inputs.mask[0].cpu().numpy()] = 0.0
    mean -= shift  # the gated one-step mean; every member moves alike, so the spread is kept
    kept = [member - shift for member in kept]  # float64 until widened: float32 rounding would be stretched
    floor = model.error_variance(prepared, model.analysis.coverage(step.latitude, step.longitude))
    if floor is not None:  # the model's calibrated error, and the members spread as much
        floor = floor[0].cpu().numpy()
        kept = _rescaled(kept, mean, variance, floor)
        variance = floor
    spread = np.where(step.valid, np.sqrt(variance), np.nan)
    stats = np.stack([mean, spread]).astype(np.float32)
    return np.concatenate([stats, np.stack(kept).astype(np.float32)]) if options.keep_members else stats


def _rescaled(members: list[np.ndarray], mean: np.ndarray, variance: np.ndarray,
              floor: np.ndarray) -> list[np.ndarray]:
    """The members' departures from their mean scaled, cell by cell, so that their spread ``variance`` becomes the
    calibrated error ``floor``: the network draws the patterns, its validation sets their size (a network's own
    spread measured 0.3-2.3 times its error on the nature run). Their mean is kept. Where the members agree to
    1e-5 degC there is no pattern to scale, only rounding: they stay as drawn."""
    if len(members) < 2:
        return members
    drawn = variance > 1e-10
    scale = np.sqrt(np.divide(floor, variance, out=np.ones_like(variance), where=drawn))
    return [mean + scale * (member - mean) for member in members]


class _Estimator:
    """The model and the sampling options, picklable and tokenized by the model's weights.

    A dask graph holds one estimator as a single key, so a cluster ships the model to each worker once,
    not inside every task; the copy on the target device is made on first use in each process.
    """

    def __init__(self, model: LatentDiffusion | Analysis, device: str | torch.device | None,
                 options: SamplingOptions) -> None:
        self.model, self.device, self.options = model, device, options
        self.identity = checkpoint.digest(model.state_dict()) + json.dumps(model.config, sort_keys=True)
        self._runner: tuple[LatentDiffusion | Analysis, torch.device] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_runner": None}

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.identity, str(self.device), repr(self.options))

    def _prepare(self) -> tuple[LatentDiffusion | Analysis, torch.device]:
        if self._runner is None:
            relax_heap_trimming()  # dask workers trim the heap eagerly: slow for big tensors
            target = pick_device(self.device)
            model = self.model
            if next(iter(model.buffers())).device != target:
                model = copy.deepcopy(model).to(target)
            self._runner = (model.eval(), target)
        return self._runner

    def __call__(self, gridded: tuple[np.ndarray, np.ndarray], template: xr.Dataset, surface: np.ndarray,
                 index: int, seed: int) -> np.ndarray:
        """One time step's estimate from its gridded profiles: (2 [+ members], depth, lat, lon)."""
        model, device = self._prepare()
        x, x_mask = gridded
        step = _Step(x, x_mask, surface, _valid_cells(template, surface), template.latitude.values,
                     template.longitude.values, template.time.values, float(_day_of_year(template)[0]))
        if isinstance(model, Analysis):
            return _analysis_step(model, step, device)
        return _ensemble_step(model, step, self.options, _generator(seed, index), device)


def _run_estimator(estimator: _Estimator, *args) -> np.ndarray:
    return estimator(*args)


def _grid_step(profiles: xr.Dataset, template: xr.Dataset, window: str) -> tuple[np.ndarray, np.ndarray]:
    """One time step's profiles on the grid: ``x`` and ``x_mask`` (depth, lat, lon)."""
    gridded = grid_profiles(profiles, like=template, window=window)
    return gridded.x.values[0], gridded.x_mask.values[0]


def _observed_columns(gridded: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Columns of one time step that hold an observation (lat, lon)."""
    return gridded[1].any(axis=0)


def reconstruct(
    grid: xr.Dataset,
    profiles: xr.Dataset,
    sst: xr.Dataset | xr.DataArray,
    model: LatentDiffusion | Analysis,
    *,
    options: SamplingOptions | None = None,
    members: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    window: str = "7D",
) -> xr.Dataset:
    """Reconstruct the temperature cube on ``grid`` from ``profiles`` and ``sst``.

    Parameters
    ----------
    grid
        Where to reconstruct: a canonical cube (its NaN mark land and the bottom; e.g. the truth of an
        observing-system simulation) or a Dataset with ``time``, ``latitude`` and ``longitude`` coordinates and,
        optionally, a boolean ``ocean`` (True over the ocean; with ``depth``, by level). Without ``thetao`` or
        ``ocean``, land comes from the SST's NaN, so a cloud gap in the SST is taken for land and left NaN.
    profiles
        Observed profiles (:func:`xdepthrecon.read_profiles` form), gridded with ``window``.
    sst
        Surface temperature on any grid, aligned with :func:`xdepthrecon.align_sst`.
    model
        A trained :class:`~xdepthrecon.LatentDiffusion` (an ensemble), or a fitted
        :class:`~xdepthrecon.Analysis` (the classical analysis alone: its mean and calibrated error).
    options
        How the ensemble is sampled (default :class:`~xdepthrecon.SamplingOptions`: 8 members, 25 DDIM steps).
    members, steps
        Shortcuts for ``options``' ensemble size and number of steps.
    seed
        Seed of the ensemble; time step ``i`` draws from ``(seed, i)``, so results do not depend on chunking.
    device
        Where the network runs; default CUDA when available.
    window
        Time window for gridding the profiles.

    Returns
    -------
    xarray.Dataset
        ``thetao`` (the network's estimate of the mean: the mean of the members' first clean estimates, from the
        noisiest level, decoded, its correction of the guess weighted by the model's ``correction_gate``) and
        ``thetao_std`` (the model's calibrated error, see :class:`~xdepthrecon.analysis.errors.ErrorModel`;
        without one, the ensemble's standard deviation, ddof 1) in degC, ``observed(time, latitude,
        longitude)`` (columns with a profile), and with ``keep_members``
        ``thetao_members(member, time, depth, latitude, longitude)``, lazily computed per time step: the
        network's draws, shifted alike onto ``thetao`` and their departures from it scaled so that their
        spread is ``thetao_std``. Being centred and scaled, they are not independent draws (their attribute
        ``member_construction`` says so): their fair CRPS is optimistic, about 4 % with 16 members; the stated
        error's CRPS is the honest score (:func:`~xdepthrecon.evaluate` without ``thetao_members``).
    """
    options = replace(options or SamplingOptions(), **{name: value for name, value in
                                                       (("members", members), ("steps", steps)) if value is not None})
    if isinstance(model, Analysis) and options.keep_members:
        raise ValueError("a classical Analysis gives a mean and its calibrated error, no members: use "
                         "keep_members=False, or reconstruct with a LatentDiffusion for an ensemble")
    template = _template(grid, model if isinstance(model, Analysis) else model.analysis)
    surface = align_sst(sst, template).sst.transpose("time", "latitude", "longitude")
    windows = profile_windows(template.time.values, profiles.time.values, window)
    _warn_outside_windows(profiles.sizes["profile"], windows, window)
    estimator = dask.delayed(_Estimator(model, device, options), pure=True)
    shape = (2 + options.members * options.keep_members, template.sizes["depth"], template.sizes["latitude"],
             template.sizes["longitude"])
    samples, observed = [], []
    for index, members_in_window in enumerate(windows):
        step = template.isel(time=[index])
        gridded = dask.delayed(_grid_step, pure=True)(profiles.isel(profile=members_in_window), step, window)
        task = dask.delayed(_run_estimator, pure=True)(estimator, gridded, step, surface.data[index], index, seed)
        samples.append(dsa.from_delayed(task, shape=shape, dtype=np.float32))
        columns = dask.delayed(_observed_columns, pure=True)(gridded)
        observed.append(dsa.from_delayed(columns, shape=shape[2:], dtype=bool))
    stacked = dsa.stack(samples, axis=1)
    coords = {name: template[name] for name in CANONICAL_DIMS if name in template.coords}
    attrs = {"units": "degC", "standard_name": "sea_water_potential_temperature"}
    out = xr.Dataset({
        "thetao": xr.DataArray(stacked[0], dims=CANONICAL_DIMS, coords=coords,
                               attrs={"long_name": "ensemble mean temperature", **attrs}),
        "thetao_std": xr.DataArray(stacked[1], dims=CANONICAL_DIMS, coords=coords,
                                   attrs={"long_name": "standard deviation of temperature (the model's "
                                                       "calibrated error, else the ensemble spread)", "units": "degC"}),
        "observed": xr.DataArray(dsa.stack(observed), dims=("time", "latitude", "longitude"),
                                 coords={name: template[name] for name in ("time", "latitude", "longitude")},
                                 attrs={"long_name": "column holds an observation"}),
    })
    if options.keep_members:
        made = {MEMBERS_ATTRIBUTE: CALIBRATED_MEMBERS} if model.error_model is not None else {}
        out["thetao_members"] = xr.DataArray(stacked[2:], dims=("member", *CANONICAL_DIMS), coords=coords,
                                             attrs={"long_name": "ensemble members", **attrs, **made})
    described = {"model": type(model).__name__, "seed": seed} if isinstance(model, Analysis) else {
        "members": options.members, "steps": options.steps, "sampler": options.sampler, "eta": options.eta,
        "seed": seed, "tile": options.tile, "overlap": options.overlap, "replace": options.replace or None,
        "fast": options.fast}
    call = describe_call("xdepthrecon.reconstruct", **described)
    out.attrs = with_history({k: v for k, v in template.attrs.items() if k != "history"}, call)
    return out


def _warn_outside_windows(total: int, windows: list[np.ndarray], window: str) -> None:
    used = np.unique(np.concatenate(windows)).size if windows else 0
    if used < total:
        warnings.warn(f"reconstruct uses {used} of {total} profiles: {total - used} fall in no time step's window "
                      f"(window={window!r}); widen the window or reconstruct at their times.", UserWarning,
                      stacklevel=3)


def _day_of_year(template: xr.Dataset) -> np.ndarray:
    try:
        return template.time.dt.dayofyear.values.astype(np.float32)
    except (AttributeError, TypeError):
        return np.full(template.sizes["time"], np.nan, dtype=np.float32)
