"""The autoencoder's ceiling: how well it round-trips a cube, beside EOFs of the same size.

A reconstruction can never be better than the autoencoder it decodes with, so before trusting one on a new
cube a user checks :func:`compression_ceiling`: the round-trip RMSE ``decode(encode(cube))`` against the cube,
per depth band, beside per-column PCA (EOFs) with as many components as the autoencoder has latent channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import numpy as np
import xarray as xr

from xdepthrecon.encoding import decode, encode
from xdepthrecon.evaluation.bands import default_bands, in_band
from xdepthrecon.io.cube import as_cube
from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.stats.pca import PCACompressor

__all__ = ["compression_ceiling"]


def compression_ceiling(
    cube: xr.Dataset | xr.DataArray,
    autoencoder: DepthBandAutoencoder,
    *,
    eofs: PCACompressor | None = None,
    bands: Sequence[tuple[float, float]] | None = None,
    mask: xr.DataArray | None = None,
) -> xr.Dataset:
    """Round-trip RMSE of ``autoencoder`` on ``cube`` per depth band, beside EOFs at the same latent size.

    Parameters
    ----------
    cube
        Temperature cube in any layout :func:`xdepthrecon.standardize` understands, at the autoencoder's levels.
    autoencoder
        The trained autoencoder.
    eofs
        The EOFs to compare with, e.g. ``PCACompressor.fit(training_cube, k)`` for the EOFs a user would fit
        on the same training data. Default: the EOFs of ``cube`` itself, with the autoencoder's latent size
        and normalisation: the best linear compression of this very cube, a strict reference.
    bands
        Depth bands ``(top, bottom)`` in m; a band holds the levels ``top <= depth < bottom`` (``<=`` for
        the last). Default :func:`default_bands`.
    mask
        Boolean, True where to score, broadcastable against the cube (e.g. a region held out from training).

    Returns
    -------
    xarray.Dataset
        Over ``band`` (labels such as ``"0-100 m"``): ``autoencoder_rmse`` and ``eof_rmse`` (degC), their
        ``ratio`` (below 1: the autoencoder compresses this cube better than EOFs), and ``points`` scored.
        Every score of a band is over the same values: those of the cube that both round trips rebuild.

    Raises
    ------
    ValueError
        When the cube is not at the autoencoder's levels, or ``eofs`` has another latent size.
    """
    thetao = as_cube(cube).thetao
    autoencoder.check_levels(thetao.depth.values)
    size = autoencoder.latent_channels
    if eofs is None:
        eofs = PCACompressor.fit(thetao, size, mean=autoencoder.mean.cpu().numpy(),
                                 std=autoencoder.std.cpu().numpy())
    elif eofs.n_components != size:
        raise ValueError(f"eofs has {eofs.n_components} components and the autoencoder {size} latent channels; "
                         f"compare at the same size: PCACompressor.fit(training_cube, {size})")
    rebuilt = {"autoencoder": decode(encode(thetao, autoencoder), autoencoder).thetao,
               "eof": eofs.decode(eofs.encode(thetao)).thetao}
    errors = {name: (field - thetao).transpose(*thetao.dims) for name, field in rebuilt.items()}
    scored = errors["autoencoder"].notnull() & errors["eof"].notnull()
    if mask is not None:
        scored = scored & mask.astype(bool)
    spatial = [dim for dim in thetao.dims if dim != "depth"]
    autoencoder_sse, eof_sse, counts = (np.asarray(v.values, dtype=float) for v in dask.compute(
        *[(error**2).where(scored).sum(spatial) for error in errors.values()], scored.sum(spatial)))
    depth = thetao.depth.values
    bands = list(bands) if bands is not None else default_bands(depth)
    rows: dict[str, list[float]] = {"autoencoder_rmse": [], "eof_rmse": [], "points": []}
    for i, band in enumerate(bands):
        levels = in_band(depth, band, i == len(bands) - 1)
        points = counts[levels].sum()
        for name, sse in (("autoencoder_rmse", autoencoder_sse), ("eof_rmse", eof_sse)):
            rows[name].append(np.sqrt(sse[levels].sum() / points) if points else np.nan)
        rows["points"].append(points)
    labels = [f"{top:g}-{bottom:g} m" for top, bottom in bands]
    result = xr.Dataset({name: ("band", np.asarray(values, dtype=float)) for name, values in rows.items()},
                        coords={"band": labels})
    result["points"] = result.points.astype(np.int64)
    result["ratio"] = result.autoencoder_rmse / result.eof_rmse
    result.autoencoder_rmse.attrs = {"long_name": "round-trip RMSE of the autoencoder", "units": "degC"}
    result.eof_rmse.attrs = {"long_name": f"round-trip RMSE of {size} EOFs", "units": "degC"}
    result.ratio.attrs = {"long_name": "autoencoder RMSE over EOF RMSE (below 1: the autoencoder is better)",
                          "units": "1"}
    result.points.attrs = {"long_name": "values scored", "units": "1"}
    return result
