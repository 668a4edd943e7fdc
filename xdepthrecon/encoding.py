"""Encode cubes to latents and decode latents back to cubes, lazily and chunk by chunk.

``encode`` maps ``thetao(time, depth, latitude, longitude)`` to ``latent(time, channel, latitude,
longitude)`` with a :class:`~xdepthrecon.DepthBandAutoencoder`; ``decode`` maps back. On dask input
both stay lazy: each chunk is read with a halo as wide as the network's receptive field, cut into
tiles that are batched through the network, and trimmed, so a chunked result equals the unchunked
one and no seam shows at chunk edges; a global grid wraps in longitude.
"""

from __future__ import annotations

import copy

import dask.array as dsa
import numpy as np
import torch
import xarray as xr

from xdepthrecon._allocator import relax_heap_trimming
from xdepthrecon._halo import map_columns
from xdepthrecon._precision import network_precision, resolve_fast
from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import as_cube, is_global
from xdepthrecon.models.autoencoder import DepthBandAutoencoder

_LATENT_ATTRS = {"long_name": "depth-band autoencoder latent", "units": "1"}


class _NetworkRunner:
    """A picklable batch function running one of the autoencoder's methods on float32 numpy tiles.

    Dask graphs hold one runner as a single key, so a cluster ships the model to each worker once,
    not inside every task; the device copy of the model is made on first use in each process.
    """

    def __init__(self, autoencoder: DepthBandAutoencoder, device: str | torch.device | None, fast: bool | None,
                 method: str, levels_channel: bool = False) -> None:
        self.autoencoder, self.device, self.fast, self.method = autoencoder, device, fast, method
        #: The batch's last channel holds each column's number of ocean levels; NaN goes below them.
        self.levels_channel = levels_channel
        self._model: DepthBandAutoencoder | None = None
        self._target: torch.device | None = None
        self._fast = False  # resolved on the device on first use

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_target": None}

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.autoencoder.identity, str(self.device), self.fast, self.method,
                self.levels_channel)

    def _prepare(self) -> tuple[DepthBandAutoencoder, torch.device]:
        if self._model is None:
            relax_heap_trimming()  # dask workers trim the heap eagerly: slow for big tensors
            current = next(self.autoencoder.parameters()).device
            target = current if self.device is None else torch.device(self.device)
            model = self.autoencoder
            self._fast = resolve_fast(self.fast, target)
            if target != current or self._fast:
                model = copy.deepcopy(self.autoencoder).to(target)
            if self._fast:
                model = model.to(memory_format=torch.channels_last)
            self._model, self._target = model.eval(), target
        return self._model, self._target

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        model, target = self._prepare()
        levels = None
        if self.levels_channel:
            batch, levels = batch[:, :-1], batch[:, -1:]
        valid = ~np.isnan(batch).all(axis=1, keepdims=True)
        inputs = torch.from_numpy(np.nan_to_num(batch, nan=np.nan if self.method == "encode" else 0.0)).to(target)
        if self._fast:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), network_precision(target, self._fast):
            out = getattr(model, self.method)(inputs).float().cpu().numpy()
        if levels is not None:
            valid = valid & (np.arange(out.shape[1])[None, :, None, None] < levels)
        return np.where(valid, out, np.nan).astype(np.float32)


def _check_autoencoder(autoencoder: DepthBandAutoencoder) -> None:
    if not isinstance(autoencoder, DepthBandAutoencoder):
        raise TypeError(f"expected a DepthBandAutoencoder, got {type(autoencoder).__name__}; "
                        "train one with xdepthrecon.train_autoencoder or load one with xdepthrecon.load.")
    if autoencoder.spatial_downsample != 1:
        raise ValueError(
            f"this autoencoder has spatial_downsample={autoencoder.spatial_downsample}; encoding whole cubes "
            "supports band-only compression (spatial_downsample=1). Call ae.encode/ae.decode on tensors whose "
            "height and width are multiples of the factor instead."
        )


def encode(
    ds: xr.Dataset | xr.DataArray,
    autoencoder: DepthBandAutoencoder,
    *,
    batch_size: int = 16,
    tile: int = 128,
    device: str | torch.device | None = None,
    fast: bool | None = None,
) -> xr.Dataset:
    """Encode a temperature cube to the autoencoder's latent, lazily on dask input.

    Parameters
    ----------
    ds
        A cube in any layout :func:`xdepthrecon.standardize` understands, at the autoencoder's depth levels.
    autoencoder
        The trained autoencoder.
    batch_size
        Tiles per network call.
    tile
        Tile size (grid cells) inside each chunk.
    device
        Where the network runs; default: where the autoencoder is.
    fast
        Run the network in bfloat16 autocast with channels_last memory; None (default): where that is faster,
        on GPUs and on CPUs with AMX or AVX-512 BF16 (see docs/performance.md for the added error), else fp32.

    Returns
    -------
    xarray.Dataset
        ``latent(time, channel, latitude, longitude)`` (NaN on land columns) and
        ``ocean_levels(time, latitude, longitude)``, the number of valid levels per column, which
        :func:`decode` uses to put NaN back below the bottom. The autoencoder's identity and levels
        are in the attrs.

    Raises
    ------
    ValueError
        When the cube's depth levels differ from the autoencoder's.
    """
    _check_autoencoder(autoencoder)
    cube = as_cube(ds)
    autoencoder.check_levels(cube.depth.values)
    thetao = cube.thetao
    function = _NetworkRunner(autoencoder, device, fast, "encode")
    data = map_columns(thetao.data.astype(np.float32), function, autoencoder.latent_channels,
                       halo=len(autoencoder.encoder_channels), periodic=is_global(cube.longitude.values),
                       tile=tile, batch_size=batch_size)
    latent = xr.DataArray(
        data,
        dims=("time", "channel", "latitude", "longitude"),
        coords={k: v for k, v in thetao.coords.items() if k != "depth"},
        attrs=dict(_LATENT_ATTRS),
    )
    ocean_levels = thetao.notnull().sum("depth").astype(np.int16)
    ocean_levels.attrs = {"long_name": "number of valid depth levels from the surface", "units": "1"}
    call = describe_call("xdepthrecon.encode", fast=fast)
    attrs = with_history(cube.attrs, call)
    attrs.update(autoencoder_identity=autoencoder.identity, depth_levels=cube.depth.values.tolist())
    return xr.Dataset({"latent": latent, "ocean_levels": ocean_levels}, attrs=attrs)


def decode(
    ds: xr.Dataset,
    autoencoder: DepthBandAutoencoder,
    *,
    batch_size: int = 16,
    tile: int = 128,
    device: str | torch.device | None = None,
    fast: bool | None = None,
) -> xr.Dataset:
    """Decode latents (from :func:`encode` or a diffusion sampler) back to a temperature cube.

    Parameters
    ----------
    ds
        Dataset with ``latent(time, channel, latitude, longitude)``; ``ocean_levels`` if present puts NaN
        below the bottom of each column. Where the attrs name the autoencoder that made the latents, it
        must be this one.
    autoencoder, batch_size, tile, device, fast
        As in :func:`encode`.

    Returns
    -------
    xarray.Dataset
        ``thetao(time, depth, latitude, longitude)`` in degC at the autoencoder's depth levels, NaN on
        land (latent NaN) and below ``ocean_levels``.
    """
    _check_autoencoder(autoencoder)
    if not isinstance(ds, xr.Dataset) or "latent" not in ds.data_vars:
        raise ValueError("decode needs a Dataset with a 'latent' variable, as made by xdepthrecon.encode.")
    made_by = ds.attrs.get("autoencoder_identity")
    if made_by is not None and made_by != autoencoder.identity:
        raise ValueError(
            f"these latents were made by autoencoder {made_by}, but this one is {autoencoder.identity}: "
            "decode with the autoencoder that encoded them (latents of different autoencoders mean different things)."
        )
    latent = ds.latent.transpose("time", "channel", "latitude", "longitude")
    if latent.sizes["channel"] != autoencoder.latent_channels:
        raise ValueError(f"the latent has {latent.sizes['channel']} channels; this autoencoder has "
                         f"{autoencoder.latent_channels}.")
    if autoencoder.depth is None:
        raise ValueError("this autoencoder records no depth levels; set ae.depth to the levels it was trained on.")
    inputs = latent.data.astype(np.float32)
    with_levels = "ocean_levels" in ds.data_vars
    if with_levels:  # travels as one more channel, so the mask is made in the decoding task itself
        levels = ds.ocean_levels.transpose("time", "latitude", "longitude").data.astype(np.float32)[:, None]
        inputs = (dsa if isinstance(inputs, dsa.Array) else np).concatenate([inputs, levels], axis=1)
    function = _NetworkRunner(autoencoder, device, fast, "decode", levels_channel=with_levels)
    data = map_columns(inputs, function, autoencoder.in_channels,
                       halo=len(autoencoder.decoder_channels), periodic=is_global(latent.longitude.values),
                       tile=tile, batch_size=batch_size)
    depth = xr.DataArray(autoencoder.depth.copy(), dims="depth",
                         attrs={"standard_name": "depth", "long_name": "depth below sea surface", "units": "m",
                                "positive": "down", "axis": "Z"})
    thetao = xr.DataArray(
        data,
        dims=("time", "depth", "latitude", "longitude"),
        coords={**{k: v for k, v in latent.coords.items() if k != "channel"}, "depth": depth},
        attrs={"standard_name": "sea_water_potential_temperature", "long_name": "sea water temperature",
               "units": "degC"},
    )
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("autoencoder_identity", "depth_levels")}
    out = xr.Dataset({"thetao": thetao.transpose("time", "depth", "latitude", "longitude")},
                     attrs=with_history(attrs, describe_call("xdepthrecon.decode", fast=fast)))
    return out
