"""Reconstruct full-depth temperature from sparse profiles and surface temperature with a trained model.

For each time step, the gridded profiles and the aligned SST become the condition; an ensemble of
latents is sampled over the whole domain at once, the denoiser running on overlapping tiles (all
tiles and members batched) whose outputs are blended at every step, so tiles share one coherent
sample and no seam shows; global grids wrap in longitude. The decoded members give the ensemble mean
and spread. Time steps are computed lazily, one dask task each.
"""

from __future__ import annotations

import copy
import json
import warnings

import dask
import dask.array as dsa
import numpy as np
import torch
import xarray as xr

from xdepthrecon import checkpoint
from xdepthrecon._allocator import relax_heap_trimming
from xdepthrecon._precision import network_precision
from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import CANONICAL_DIMS, as_cube, is_global
from xdepthrecon.diffusion.latent import LatentDiffusion
from xdepthrecon.gridding import grid_profiles, profile_windows
from xdepthrecon.io.sst import align_sst
from xdepthrecon.tiling import Tiling, tile_centres, tiled
from xdepthrecon.training.autoencoder import pick_device


def _template(grid: xr.Dataset, model: LatentDiffusion) -> xr.Dataset:
    """The grid as a canonical Dataset at the model's levels (with ``thetao`` when the grid has it)."""
    depth = model.autoencoder.depth
    if "thetao" in grid.data_vars:
        cube = as_cube(grid)
        model.autoencoder.check_levels(cube.depth.values)
        return cube
    missing = [name for name in ("time", "latitude", "longitude") if name not in grid.coords]
    if missing:
        raise ValueError(f"the grid has no {', '.join(missing)} coordinate; pass a canonical cube or a Dataset with "
                         "time, latitude and longitude coordinates (latitude and longitude increasing, "
                         "longitude in [-180, 180)).")
    for axis in ("latitude", "longitude"):
        if np.any(np.diff(grid[axis].values) <= 0):
            raise ValueError(f"the grid's {axis} must increase; use ds.sortby('{axis}') or xdepthrecon.standardize.")
    return xr.Dataset(coords={"time": grid.time, "depth": ("depth", depth.copy(), {"units": "m", "positive": "down"}),
                              "latitude": grid.latitude, "longitude": grid.longitude}, attrs=grid.attrs)


def _valid_cells(template: xr.Dataset, surface: np.ndarray) -> np.ndarray:
    """Valid (ocean, above the bottom) cells (depth, lat, lon) of one time step: from ``thetao``, else the SST's
    land."""
    if "thetao" in template.data_vars:
        return np.asarray(template.thetao.notnull().values[0])
    return np.broadcast_to(~np.isnan(surface)[None], (template.sizes["depth"], *surface.shape[-2:]))


def _generator(seed: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def _sample_step(
    model: LatentDiffusion, x: np.ndarray, x_mask: np.ndarray, sst: np.ndarray, valid: np.ndarray,
    latitude: np.ndarray, longitude: np.ndarray, day_of_year: float, members: int, steps: int, sampler: str,
    eta: float, generator: torch.Generator, tile: int, overlap: int, batch_size: int, replace: bool,
    device: torch.device, keep_members: bool, fast: bool = False, times: np.ndarray | None = None,
) -> np.ndarray:
    """Ensemble mean, standard deviation (ddof 1) and, with ``keep_members``, the members of one time step.

    Returns (2 [+ members], depth, lat, lon), NaN outside ``valid``. ``times`` (the step's time, one value)
    places a model's background in the season.
    """
    height, width = x.shape[-2:]
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None].to(device)  # noqa: E731
    x_t, mask_t = as_tensor(x), as_tensor(x_mask) > 0
    surface = as_tensor(sst)[:, None] if sst.ndim == 2 else as_tensor(sst)
    with torch.no_grad():
        background = guess = None
        if model.background is not None:
            background = model.background.at(times, latitude, longitude,
                                             sst.reshape(-1, *sst.shape[-2:])[:1])  # the first field, from the host
            guess = model.temperature_guess(x_t, mask_t, background, surface, as_tensor(latitude),
                                            as_tensor(longitude))
        condition = model.condition(x_t, mask_t, surface, background, None if guess is None else guess.value)
        tiling = Tiling(height, width, tile, overlap, periodic=is_global(longitude))
        centres = [torch.from_numpy(c).float().to(device) for c in tile_centres(tiling, latitude, longitude)]
        condition_tiles = tiling.cut(condition).repeat_interleave(members, dim=0)
        context = {"latitude": centres[0].repeat_interleave(members),
                   "longitude": centres[1].repeat_interleave(members),
                   "day_of_year": torch.full((len(centres[0]) * members,), day_of_year, device=device)}

        def network(z_tiles: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = []
            for start in range(0, len(z_tiles), batch_size):
                part = slice(start, start + batch_size)
                with network_precision(device, fast):
                    out.append(model.predict(z_tiles[part], t[part], condition_tiles[part],
                                             **{k: v[part] for k, v in context.items()}).float())
            return torch.cat(out)

        project = _replacement(model, x_t, mask_t) if replace else None
        z = model.sample_latent(condition.expand(members, -1, -1, -1), {}, steps=steps, sampler=sampler, eta=eta,
                                generator=generator, denoiser=tiled(network, tiling), project=project)
        offset = model.decoded_offset(None if guess is None else guess.value, condition)
        mean = np.zeros(valid.shape, dtype=np.float64)
        squares = np.zeros(valid.shape, dtype=np.float64)
        kept = []
        for count, latent in enumerate(z, start=1):  # one member decoded at a time: memory ~ a few fields
            decoded = model.decode_latent(latent[None])
            if offset is not None:
                decoded = decoded + offset
            if replace:
                decoded = torch.where(mask_t, x_t, decoded)
            values = np.where(valid, decoded[0].cpu().numpy(), np.nan).astype(np.float32)
            delta = values - mean
            mean += delta / count
            squares += delta * (values - mean)
            if keep_members:
                kept.append(values)
        variance = squares / (members - 1) if members > 1 else np.zeros(valid.shape)
        if model.error_model is not None:  # never less than the model's calibrated error
            observed = mask_t.any(dim=1, keepdim=True)
            floor = model.error_model.expected_variance(observed, None if guess is None else guess.variance)
            if model.covered_error_model is not None:  # where the training data reached, a trained region's error
                covered = model.background.covered_at(latitude, longitude)
                floor = torch.where(covered, model.covered_error_model.expected_variance(observed, guess.variance),
                                    floor)
            variance = np.maximum(variance, floor[0].cpu().numpy())
    spread = np.where(valid, np.sqrt(variance), np.nan)
    stats = np.stack([mean, spread]).astype(np.float32)
    return np.concatenate([stats, np.stack(kept)]) if keep_members else stats


def _replacement(model: LatentDiffusion, x: torch.Tensor, mask: torch.Tensor):
    """Projection keeping observed values: decode the estimate, put the observations in, re-encode."""
    observed_columns = mask.any(dim=1, keepdim=True)

    def project(z0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        decoded = model.decode_latent(z0)
        corrected = torch.where(mask, x, decoded)
        return torch.where(observed_columns, model.encode_target(corrected), z0)

    return project


class _EnsembleSampler:
    """The model and the sampling options, picklable and tokenized by the model's weights.

    A dask graph holds one sampler as a single key, so a cluster ships the model to each worker once,
    not inside every task; the copy on the target device is made on first use in each process.
    """

    def __init__(self, model: LatentDiffusion, device: str | torch.device | None, members: int, steps: int,
                 sampler: str, eta: float, tile: int, overlap: int, batch_size: int, replace: bool,
                 keep_members: bool, fast: bool) -> None:
        self.model, self.device = model, device
        self.options = dict(members=members, steps=steps, sampler=sampler, eta=eta, tile=tile, overlap=overlap,
                            batch_size=batch_size, replace=replace, keep_members=keep_members, fast=fast)
        self.identity = checkpoint.digest(model.state_dict()) + json.dumps(model.config, sort_keys=True)
        self._runner: tuple[LatentDiffusion, torch.device] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_runner": None}

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.identity, str(self.device), sorted(self.options.items()))

    def _prepare(self) -> tuple[LatentDiffusion, torch.device]:
        if self._runner is None:
            relax_heap_trimming()  # dask workers trim the heap eagerly: slow for big tensors
            target = pick_device(self.device)
            model = self.model
            if next(model.parameters()).device != target:
                model = copy.deepcopy(model).to(target)
            self._runner = (model.eval(), target)
        return self._runner

    def __call__(self, gridded: tuple[np.ndarray, np.ndarray], template: xr.Dataset, surface: np.ndarray,
                 index: int, seed: int) -> np.ndarray:
        """Sample one time step's ensemble from its gridded profiles: (2 [+ members], depth, lat, lon)."""
        model, device = self._prepare()
        x, x_mask = gridded
        return _sample_step(model, x, x_mask, surface, _valid_cells(template, surface), template.latitude.values,
                            template.longitude.values, _day_of_year(template)[0],
                            generator=_generator(seed, index), device=device, times=template.time.values,
                            **self.options)


def _run_sampler(sampler: _EnsembleSampler, *args) -> np.ndarray:
    return sampler(*args)


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
    model: LatentDiffusion,
    members: int = 8,
    steps: int = 50,
    sampler: str = "ddim",
    eta: float = 0.0,
    seed: int = 0,
    tile: int = 64,
    overlap: int = 16,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    keep_members: bool = False,
    replace: bool = False,
    window: str = "7D",
    fast: bool = False,
) -> xr.Dataset:
    """Reconstruct the temperature cube on ``grid`` from ``profiles`` and ``sst`` with an ensemble.

    Parameters
    ----------
    grid
        Where to reconstruct: a canonical cube (its NaN mark land and the bottom; e.g. the truth of an
        observing-system simulation) or a Dataset with only ``time``, ``latitude`` and ``longitude``
        coordinates (land then comes from the SST's NaN).
    profiles
        Observed profiles (:func:`xdepthrecon.read_profiles` form), gridded with ``window``.
    sst
        Surface temperature on any grid, aligned with :func:`xdepthrecon.align_sst`.
    model
        A trained :class:`~xdepthrecon.diffusion.latent.LatentDiffusion`.
    members
        Ensemble size.
    steps, sampler, eta
        Reverse diffusion: DDIM with ``steps`` steps and stochasticity ``eta``, or DDPM.
    seed
        Seed of the ensemble; time step ``i`` draws from ``(seed, i)``, so results do not depend on chunking.
    tile, overlap
        Tile size and overlap (grid cells) of the denoiser passes.
    batch_size
        Tiles x members per network call.
    device
        Where the network runs; default CUDA when available.
    keep_members
        Also return ``thetao_members(member, time, depth, latitude, longitude)``.
    replace
        Keep the sample consistent with the observed values: at every step the clean estimate is decoded,
        the observations put in and the result re-encoded, and the decoded members carry the observed
        values exactly where observed.
    window
        Time window for gridding the profiles.
    fast
        Run the denoiser in bfloat16 autocast (GPUs, CPUs with AMX); the sampling arithmetic stays fp32.

    Returns
    -------
    xarray.Dataset
        ``thetao`` (ensemble mean) and ``thetao_std`` (ensemble standard deviation, ddof 1, raised to the
        model's calibrated error where the ensemble is narrower; see
        :class:`~xdepthrecon.analysis.errors.ErrorModel`) in degC,
        ``observed(time, latitude, longitude)`` (columns with a profile), lazily computed per time step.
    """
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    template = _template(grid, model)
    surface = align_sst(sst, template).sst.transpose("time", "latitude", "longitude")
    windows = profile_windows(template.time.values, profiles.time.values, window)
    _warn_outside_windows(profiles.sizes["profile"], windows, window)
    sampler_key = dask.delayed(_EnsembleSampler(model, device, members, steps, sampler, eta, tile, overlap,
                                                batch_size, replace, keep_members, fast), pure=True)
    shape = (2 + members * keep_members, template.sizes["depth"], template.sizes["latitude"],
             template.sizes["longitude"])
    samples, observed = [], []
    for index, members_in_window in enumerate(windows):
        step = template.isel(time=[index])
        gridded = dask.delayed(_grid_step, pure=True)(profiles.isel(profile=members_in_window), step, window)
        task = dask.delayed(_run_sampler, pure=True)(sampler_key, gridded, step, surface.data[index], index, seed)
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
                                   attrs={"long_name": "standard deviation of temperature (ensemble spread, "
                                                       "at least the model's calibrated error)", "units": "degC"}),
        "observed": xr.DataArray(dsa.stack(observed), dims=("time", "latitude", "longitude"),
                                 coords={name: template[name] for name in ("time", "latitude", "longitude")},
                                 attrs={"long_name": "column holds an observation"}),
    })
    if keep_members:
        out["thetao_members"] = xr.DataArray(stacked[2:], dims=("member", *CANONICAL_DIMS), coords=coords,
                                             attrs={"long_name": "ensemble members", **attrs})
    call = describe_call("xdepthrecon.reconstruct", members=members, steps=steps, sampler=sampler, eta=eta,
                         seed=seed, tile=tile, overlap=overlap, replace=replace or None, fast=fast or None)
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
