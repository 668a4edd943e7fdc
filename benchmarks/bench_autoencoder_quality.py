"""Autoencoder against per-column PCA at the same latent size, on held-out regions and months of the atlas.

Run ``python benchmarks/bench_autoencoder_quality.py``; writes ``benchmarks/results/autoencoder_quality.json``.

Split of the bundled atlas (``xdepthrecon.open_sample("ocean_atlas")``, 12 monthly fields, 19 levels 0-1000 m):

- **training cube**: the 9 months not held out, with the held-out boxes set to NaN (as if they were land);
- **test**: the held-out months; errors are scored only inside the held-out boxes, so every scored value is
  from a month and a place neither method saw in fitting.

Both methods get the same training cube and the same normalisation (per-level mean and standard deviation
of the training cube). PCA keeps the ``k`` leading EOFs of the complete training columns and encodes cut
columns by a gappy least-squares projection (:mod:`xdepthrecon.stats.pca`). The autoencoder is trained
with :func:`xdepthrecon.train_autoencoder` on all 9 training months (no validation split, so its training
data equal PCA's). Two test inputs are scored:

- ``context``: the whole held-out months are encoded (the usual use: compress a field), scored in the boxes;
- ``isolated``: only the boxes are given (everything else NaN), so the autoencoder's 3x3 convolutions see
  nothing outside them. PCA works column by column, so both inputs give it the same result.

Latent range: both methods also encode the whole atlas, and the largest ``|latent| / std`` of a channel is
reported (std per channel over the atlas' ocean columns): the diffusion model is trained on these latents, so
they must stay in range. PCA's exact gappy fit gives shelf columns huge amplitudes; the autoencoder's linear
path fills gaps with a regularised fit instead (see :mod:`xdepthrecon.models.autoencoder`).

RMSE (degC) is over every valid value of the held-out boxes and months, unweighted by area: per depth level,
and pooled per band (0-100 m, 100-300 m, 300-1000 m; a boundary level belongs to the upper band). Margins are
``100 * (rmse_pca - rmse_ae) / rmse_pca``: positive when the autoencoder is better.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import xarray as xr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xdepthrecon  # noqa: E402
from _common import write_result  # noqa: E402
from xdepthrecon.baselines import PCACompressor  # noqa: E402
from xdepthrecon.training.config import AUTOENCODER_TRAINING, as_record  # noqa: E402

#: Held-out boxes: (latitude range, longitude range) in degrees, inclusive.
BOXES = {
    "north_atlantic_gulf_stream": ((25.0, 50.0), (-80.0, -40.0)),
    "equatorial_pacific": ((-10.0, 10.0), (-170.0, -110.0)),
    "south_indian_agulhas": ((-50.0, -30.0), (20.0, 70.0)),
}
#: Held-out months (1 = January): one per season but winter.
HELD_OUT_MONTHS = (2, 6, 10)
BANDS = {"0-100 m": (0.0, 100.0), "100-300 m": (100.0, 300.0), "300-1000 m": (300.0, 1000.0)}
LATENT_SIZES = (4, 8, 12)
SEED = 0
#: The autoencoder: narrower than the reference widths (64, 96, 128) to fit the CPU budget, with the linear path.
MODEL = xdepthrecon.AutoencoderConfig(encoder_channels=(32, 48, 64), decoder_channels=(64, 48, 32), linear_path=True)
#: Its training: the recipe (AdamW 1e-3, cosine, patches of 32) for 30 epochs of 8 patches, no validation split.
TRAINING = replace(AUTOENCODER_TRAINING, epochs=30, batch_size=8, val_fraction=0.0, seed=SEED)
#: The reference architecture (no linear path), trained the same way, at this latent size only (for context).
REFERENCE_LATENT = 12


def split(atlas: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset, xr.DataArray]:
    """Return (training cube, held-out months, held-out months inside the boxes only, truth in the boxes)."""
    latitude, longitude = atlas.latitude, atlas.longitude
    boxes = xr.zeros_like(latitude * longitude, dtype=bool)
    for (south, north), (west, east) in BOXES.values():
        boxes = boxes | ((latitude >= south) & (latitude <= north) & (longitude >= west) & (longitude <= east))
    held_out = np.isin(np.arange(atlas.sizes["time"]) + 1, HELD_OUT_MONTHS)
    train = _masked(atlas.isel(time=~held_out), ~boxes)
    test = atlas.isel(time=held_out)
    return train, test, _masked(test, boxes), test.thetao.where(boxes)


def _masked(cube: xr.Dataset, keep: xr.DataArray) -> xr.Dataset:
    thetao = cube.thetao.where(keep).transpose(*cube.thetao.dims)
    thetao.attrs = cube.thetao.attrs
    return cube.assign(thetao=thetao)


def scores(rebuilt: xr.Dataset, truth: xr.DataArray) -> dict[str, Any]:
    """Per-depth and per-band RMSE (degC) of ``rebuilt`` where ``truth`` is valid."""
    error = (rebuilt.thetao - truth).transpose("time", "depth", "latitude", "longitude").values
    depth = truth.depth.values
    missing = np.isnan(error) & ~np.isnan(truth.transpose(*rebuilt.thetao.dims).values)
    if missing.any():
        raise RuntimeError(f"{int(missing.sum())} held-out values were not reconstructed")
    per_depth = np.sqrt(np.nanmean(error**2, axis=(0, 2, 3)))
    bands = {}
    for name, (top, bottom) in BANDS.items():
        levels = (depth > top) & (depth <= bottom) if top > 0 else (depth >= top) & (depth <= bottom)
        bands[name] = float(np.sqrt(np.nanmean(error[:, levels] ** 2)))
    return {"per_band": bands, "per_depth": per_depth.round(5).tolist()}


def latent_range(latents: xr.Dataset) -> dict[str, float]:
    """Largest and 99.99th-percentile ``|latent| / (std of its channel)`` over the ocean columns."""
    values = latents.latent.transpose("channel", ...).values.reshape(latents.sizes["channel"], -1)
    values = values[:, ~np.isnan(values).any(axis=0)]
    ratio = np.abs(values) / values.std(axis=1, keepdims=True)
    return {"max_abs_over_channel_std": round(float(ratio.max()), 1),
            "p9999_abs_over_channel_std": round(float(np.quantile(ratio, 0.9999)), 1)}


def margins(ae: dict[str, float], pca: dict[str, float]) -> dict[str, float]:
    """Per band, by how much (%) the autoencoder's RMSE is below PCA's (negative: PCA is better)."""
    return {band: round(100.0 * (pca[band] - ae[band]) / pca[band], 2) for band in pca}


def run_pca(train: xr.Dataset, test: xr.Dataset, truth: xr.DataArray, atlas: xr.Dataset, k: int) -> dict[str, Any]:
    began = time.perf_counter()
    pca = PCACompressor.fit(train, k)
    fit_s = time.perf_counter() - began
    result = scores(pca.decode(pca.encode(test)), truth)
    total = pca.explained_variance.sum()
    return {"fit_seconds": round(fit_s, 2), **result, "explained_variance_normalised": round(float(total), 4),
            "latent_range": latent_range(pca.encode(atlas))}


def run_autoencoder(train: xr.Dataset, inputs: dict[str, xr.Dataset], truth: xr.DataArray, atlas: xr.Dataset,
                    config: xdepthrecon.AutoencoderConfig) -> dict[str, Any]:
    began, cpu = time.perf_counter(), time.process_time()
    ae = xdepthrecon.train_autoencoder(train, config=config, training=TRAINING, progress=False)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    samples = sum(h["samples_per_s"] * h["seconds"] for h in ae.history)
    out: dict[str, Any] = {
        "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1), "epochs": len(ae.history),
        "patches_seen": int(round(samples)), "final_loss": round(ae.history[-1]["loss"], 6),
        "parameters": sum(p.numel() for p in ae.parameters()),
    }
    for name, cube in inputs.items():
        out[name] = scores(xdepthrecon.decode(xdepthrecon.encode(cube, ae), ae), truth)
    out["latent_range"] = latent_range(xdepthrecon.encode(atlas, ae))
    return out


def main() -> None:
    began, cpu = time.perf_counter(), time.process_time()
    load_before = os.getloadavg()
    torch.manual_seed(SEED)
    atlas = xdepthrecon.open_sample("ocean_atlas").load()
    train, test, isolated, truth = split(atlas)
    inputs = {"context": test, "isolated": isolated}
    results: dict[str, Any] = {}
    for k in LATENT_SIZES:
        pca = run_pca(train, test, truth, atlas, k)
        ae = run_autoencoder(train, inputs, truth, atlas, replace(MODEL, latent_channels=k))
        results[str(k)] = {
            "pca": pca,
            "autoencoder": ae,
            "margin_percent": {name: margins(ae[name]["per_band"], pca["per_band"]) for name in inputs},
        }
        results[str(k)]["autoencoder_beats_pca_every_band"] = all(
            value > 0 for per_input in results[str(k)]["margin_percent"].values() for value in per_input.values())
        _print_row(k, pca, ae)
    reference = run_autoencoder(train, {"context": test}, truth, atlas,
                                replace(MODEL, latent_channels=REFERENCE_LATENT, linear_path=False))
    reference["margin_percent"] = margins(reference["context"]["per_band"],
                                          results[str(REFERENCE_LATENT)]["pca"]["per_band"])
    _print_row(REFERENCE_LATENT, results[str(REFERENCE_LATENT)]["pca"], reference, label="reference AE")
    write_result("autoencoder_quality", {
        "configuration": {
            "data": "xdepthrecon.open_sample('ocean_atlas'): 12 months x 19 levels (0-1000 m) x 90 x 180 (2 deg)",
            "held_out_boxes": {name: {"latitude": list(la), "longitude": list(lo)} for name, (la, lo) in BOXES.items()},
            "held_out_months": list(HELD_OUT_MONTHS),
            "training_months": [m for m in range(1, 13) if m not in HELD_OUT_MONTHS],
            "scored_values": int(truth.notnull().sum()),
            "scored_columns": int(truth.isel(depth=0).notnull().sum()),
            "bands": {name: list(span) for name, span in BANDS.items()},
            "latent_sizes": list(LATENT_SIZES),
            "autoencoder_training": {**{k: v for k, v in as_record(MODEL).items() if k != "latent_channels"},
                                     **as_record(TRAINING)},
            "reference_autoencoder": {"latent_channels": REFERENCE_LATENT, "linear_path": False,
                                      "otherwise": "as autoencoder_training"},
            "seed": SEED,
        },
        "results": results,
        "reference_autoencoder": reference,
        "total_seconds": round(time.perf_counter() - began, 1),
        "total_cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    })


def _print_row(k: int, pca: dict[str, Any], ae: dict[str, Any], label: str = "autoencoder") -> None:
    cells = "  ".join(f"{band}: AE {ae['context']['per_band'][band]:.4f} PCA {pca['per_band'][band]:.4f}"
                      for band in BANDS)
    print(f"k={k:2d} {label} ({ae['train_seconds']:.0f} s, {ae['train_cpu_seconds']:.0f} s CPU)  {cells}", flush=True)


if __name__ == "__main__":
    main()
