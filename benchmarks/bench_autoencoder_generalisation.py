"""The autoencoder on water it has not seen, beside EOFs fitted on the same training data (issue 16).

Run ``python benchmarks/bench_autoencoder_generalisation.py [--quick]``; writes
``benchmarks/results/autoencoder_generalisation.json``.

Each case trains ``xdepthrecon.train_autoencoder(train, config=AutoencoderConfig(latent_channels=k))`` with
every other setting at its default, fits ``PCACompressor.fit(train, k)`` on the same cube, and scores both
round trips with :func:`xdepthrecon.compression_ceiling` on held-out water only, per depth band:

- ``atlas_region``: the bundled atlas (12 months, 19 levels to 1000 m, 2 degrees) with the North Atlantic
  (20-60N, 80W-0) removed from training; scored in that box. Latent size 5 and 8.
- ``atlas_snapshot``: the annual mean of the atlas (one time step, like a climatology), the same box held out.
- ``nature_run``: the eddying nature run ``qg_nature_run.nc`` (16 levels to 2000 m), trained on every 4th
  snapshot of 2001-2010 (first run) and scored on 2026-2028 (the second run: other dynamics). Latent size 6.

The whole test input is encoded (the held-out water keeps its neighbours, as in use); only held-out values
are scored: over all columns, and over the complete columns alone (those with a value at every level). On a
shelf column with no more levels than the latent size the EOFs' exact gappy fit rebuilds its levels exactly,
with amplitudes of up to a hundred standard deviations; the autoencoder fills the gap with a fit regularised
by the EOF variances instead (latents within about 12 standard deviations, which the diffusion model needs),
so on all columns its upper band carries that price. ``ratio`` is the autoencoder's RMSE over the EOFs'
(below 1: the autoencoder is better).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xdepthrecon  # noqa: E402
from _common import write_result  # noqa: E402
from xdepthrecon.stats.pca import PCACompressor  # noqa: E402
from xdepthrecon.training.config import AUTOENCODER_TRAINING, as_record  # noqa: E402

NATURE_RUN = Path(__file__).resolve().parents[2] / "shared" / "data" / "qg_nature_run.nc"
BOX = {"latitude": (20.0, 60.0), "longitude": (-80.0, 0.0)}


def _box(cube: xr.Dataset) -> xr.DataArray:
    (south, north), (west, east) = BOX["latitude"], BOX["longitude"]
    return ((cube.latitude >= south) & (cube.latitude <= north)
            & (cube.longitude >= west) & (cube.longitude <= east))


def _without(cube: xr.Dataset, region: xr.DataArray) -> xr.Dataset:
    thetao = cube.thetao.where(~region).transpose(*cube.thetao.dims)
    thetao.attrs = cube.thetao.attrs
    return cube.assign(thetao=thetao)


def cases(quick: bool) -> dict[str, tuple[xr.Dataset, xr.Dataset, xr.DataArray | None, list[int]]]:
    """(training cube, test cube, scored region or None for all, latent sizes) per case."""
    atlas = xdepthrecon.open_sample("ocean_atlas").load()
    region = _box(atlas)
    annual = atlas.mean("time", keep_attrs=True).expand_dims(time=atlas.time[:1])
    annual["thetao"] = annual.thetao.transpose(*atlas.thetao.dims)
    out = {"atlas_region": (_without(atlas, region), atlas, region, [5] if quick else [5, 8]),
           "atlas_snapshot": (_without(annual, region), annual, region, [5])}
    if NATURE_RUN.exists():
        run = xr.open_dataset(NATURE_RUN)[["thetao"]]
        year = run.time.dt.year.values
        train = run.isel(time=np.flatnonzero(year <= 2010)[::4]).load()
        test = run.isel(time=np.flatnonzero(year >= 2026)[:: 6 if quick else 2]).load()
        out["nature_run"] = (train, test, None, [6])
    return out


def score(train: xr.Dataset, test: xr.Dataset, region: xr.DataArray | None, k: int) -> dict[str, Any]:
    began = time.perf_counter()
    ae = xdepthrecon.train_autoencoder(train, config=xdepthrecon.AutoencoderConfig(latent_channels=k),
                                       progress=False)
    seconds = time.perf_counter() - began
    eofs = PCACompressor.fit(train, k)
    complete = test.thetao.notnull().all("depth")
    out: dict[str, Any] = {"train_seconds": round(seconds, 1), "epochs": len(ae.history),
                           "gate": ae.correction_gate.numpy().round(2).tolist()}
    for columns, mask in (("all_columns", region), ("complete_columns", complete if region is None else
                                                      complete & region)):
        ceiling = xdepthrecon.compression_ceiling(test, ae, eofs=eofs, mask=mask)
        out[columns] = {band: {"autoencoder_rmse": round(float(row.autoencoder_rmse), 5),
                               "eof_rmse": round(float(row.eof_rmse), 5), "ratio": round(float(row.ratio), 3),
                               "points": int(row.points)}
                        for band, row in ((b, ceiling.sel(band=b)) for b in ceiling.band.values)}
        out[columns]["never_worse_than_eofs"] = bool((ceiling.ratio <= 1.0 + 1e-3).all())
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    began = time.perf_counter()
    results: dict[str, Any] = {}
    for name, (train, test, region, sizes) in cases(quick).items():
        for k in sizes:
            results[f"{name}_k{k}"] = result = score(train, test, region, k)
            for columns in ("all_columns", "complete_columns"):
                ratios = " / ".join(f"{b} {v['ratio']:.2f}" for b, v in result[columns].items() if b.endswith(" m"))
                print(f"{name} k={k} {columns}: {ratios} ({result['train_seconds']:.0f} s)", flush=True)
    write_result("autoencoder_generalisation" + ("_quick" if quick else ""), {
        "configuration": {"cases": __doc__.split("\n\n")[2], "held_out_box": BOX,
                          "autoencoder": as_record(xdepthrecon.AutoencoderConfig()),
                          "training": as_record(AUTOENCODER_TRAINING), "quick": quick},
        "results": results,
        "total_seconds": round(time.perf_counter() - began, 1),
    })


if __name__ == "__main__":
    main()
