"""Reconstruct full-depth temperature from sparse profiles and surface temperature with a trained model.

For each time step, the gridded profiles and the aligned SST become the condition; an ensemble of
latents is sampled over the whole domain at once, the denoiser running on overlapping tiles (all
tiles and members batched) whose outputs are blended at every step, so tiles share one coherent
sample and no seam shows; global grids wrap in longitude. The decoded members give the ensemble mean
and spread. Time steps are computed lazily, one dask task each.
"""

from __future__ import annotations

import copy

import dask
import dask.array as dsa
import numpy as np
import torch
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.cube import CANONICAL_DIMS, as_cube, is_global
from xdepthrecon.diffusion.latent import LatentDiffusion
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.sst import align_sst
from xdepthrecon.tiling import Tiling, tile_centres, tiled
from xdepthrecon.training import pick_device


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


def _ocean(template: xr.Dataset, surface: xr.DataArray) -> np.ndarray:
    """Valid (ocean, above the bottom) cells (time, depth, lat, lon): from ``thetao``, else the SST's land."""
    shape = tuple(template.sizes[d] for d in CANONICAL_DIMS)
    if "thetao" in template.data_vars:
        return np.asarray(template.thetao.notnull().values)
    return np.broadcast_to(surface.notnull().values[:, None], shape)


def _generator(seed: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def _sample_step(
    model: LatentDiffusion, x: np.ndarray, x_mask: np.ndarray, sst: np.ndarray, valid: np.ndarray,
    latitude: np.ndarray, longitude: np.ndarray, day_of_year: float, members: int, steps: int, sampler: str,
    eta: float, generator: torch.Generator, tile: int, overlap: int, batch_size: int, replace: bool,
    device: torch.device, keep_members: bool,
) -> np.ndarray:
    """Ensemble mean, standard deviation (ddof 1) and, with ``keep_members``, the members of one time step.

    Returns (2 [+ members], depth, lat, lon), NaN outside ``valid``.
    """
    height, width = x.shape[-2:]
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None].to(device)  # noqa: E731
    x_t, mask_t = as_tensor(x), as_tensor(x_mask) > 0
    with torch.no_grad():
        condition = model.condition(x_t, mask_t, as_tensor(sst)[:, None] if sst.ndim == 2 else as_tensor(sst))
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
                out.append(model.denoiser(z_tiles[part], t[part], condition_tiles[part],
                                          **{k: v[part] for k, v in context.items()}))
            return torch.cat(out)

        project = _replacement(model, x_t, mask_t) if replace else None
        z = model.sample_latent(condition.expand(members, -1, -1, -1), {}, steps=steps, sampler=sampler, eta=eta,
                                generator=generator, denoiser=tiled(network, tiling), project=project)
        decoded = model.decode_latent(z)
        if replace:
            decoded = torch.where(mask_t, x_t, decoded)
        values = decoded.cpu().numpy()
    values = np.where(valid[None], values, np.nan).astype(np.float32)
    spread = values.std(axis=0, ddof=1) if members > 1 else np.zeros_like(values[0])
    stats = np.stack([values.mean(axis=0), spread])
    return np.concatenate([stats, values]) if keep_members else stats


def _replacement(model: LatentDiffusion, x: torch.Tensor, mask: torch.Tensor):
    """Projection keeping observed values: decode the estimate, put the observations in, re-encode."""
    observed_columns = mask.any(dim=1, keepdim=True)

    def project(z0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        decoded = model.decode_latent(z0)
        corrected = torch.where(mask, x, decoded)
        return torch.where(observed_columns, model.encode_target(corrected), z0)

    return project


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

    Returns
    -------
    xarray.Dataset
        ``thetao`` (ensemble mean) and ``thetao_std`` (ensemble standard deviation, ddof 1) in degC,
        ``observed(time, latitude, longitude)`` (columns with a profile), lazily computed per time step.
    """
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    template = _template(grid, model)
    target = pick_device(device)
    runner = copy.deepcopy(model).to(target).eval() if next(model.parameters()).device != target else model.eval()
    gridded = grid_profiles(profiles, like=template, window=window)
    surface = align_sst(sst, template).sst
    valid = _ocean(template, surface)
    latitude, longitude = template.latitude.values, template.longitude.values
    days = _day_of_year(template)
    shape = (2 + members * keep_members, template.sizes["depth"], latitude.size, longitude.size)
    steps_out = []
    for index in range(template.sizes["time"]):
        task = dask.delayed(_sample_step, pure=False)(
            runner, gridded.x.values[index], gridded.x_mask.values[index], surface.values[index], valid[index],
            latitude, longitude, days[index], members, steps, sampler, eta, _generator(seed, index), tile,
            overlap, batch_size, replace, target, keep_members)
        steps_out.append(dsa.from_delayed(task, shape=shape, dtype=np.float32))
    stacked = dsa.stack(steps_out, axis=1)
    coords = {name: template[name] for name in CANONICAL_DIMS if name in template.coords}
    attrs = {"units": "degC", "standard_name": "sea_water_potential_temperature"}
    out = xr.Dataset({
        "thetao": xr.DataArray(stacked[0], dims=CANONICAL_DIMS, coords=coords,
                               attrs={"long_name": "ensemble mean temperature", **attrs}),
        "thetao_std": xr.DataArray(stacked[1], dims=CANONICAL_DIMS, coords=coords,
                                   attrs={"long_name": "ensemble standard deviation of temperature", "units": "degC"}),
        "observed": gridded.x_mask.any("depth").assign_attrs(long_name="column holds an observation"),
    })
    if keep_members:
        out["thetao_members"] = xr.DataArray(stacked[2:], dims=("member", *CANONICAL_DIMS), coords=coords,
                                             attrs={"long_name": "ensemble members", **attrs})
    call = describe_call("xdepthrecon.reconstruct", members=members, steps=steps, sampler=sampler, eta=eta,
                         seed=seed, tile=tile, overlap=overlap, replace=replace or None)
    out.attrs = with_history({k: v for k, v in template.attrs.items() if k != "history"}, call)
    return out


def _day_of_year(template: xr.Dataset) -> np.ndarray:
    try:
        return template.time.dt.dayofyear.values.astype(np.float32)
    except (AttributeError, TypeError):
        return np.full(template.sizes["time"], np.nan, dtype=np.float32)
