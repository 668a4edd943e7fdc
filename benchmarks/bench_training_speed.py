"""Training throughput of both models at the sizes we ship, beside the reference system's.

Trains the autoencoder and the diffusion model through the public API with their default recipes on the eddying
nature run (``shared/data/qg_nature_run.nc``, training years only), its 16 levels interpolated onto 50 levels
(0.5-2000 m, spaced geometrically) so that each patch carries as many levels as a GLORYS column. The figure is
the steady epoch's throughput (the last of ``--epochs``): training patches per second of the epoch's wall time
(its validation included), and the same as 128 x 128 tiles of 50 levels per second, the reference's unit
(the shipped patches are 32 x 32: 16 of them make one tile's pixels). The diffusion model's step includes
everything a step does: simulated observations, the classical analysis's guess, encoding, the denoiser's forward
and backward. Setup (fitting the analysis, calibrating) is reported apart.

Reference (DESIGN.md, the same 2-core CPU): its autoencoder trains at 2.4 tiles/s (batch 16, fp32). Its
denoiser's training was not measured; its forward takes 0.61 s per 128 x 128 tile, and a training step costs
about three forwards (forward, then backward through activations and weights), so about 0.55 tiles/s: an
estimate, marked as such.
Writes benchmarks/results/training_speed[_quick].json. Run: python benchmarks/bench_training_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

import xdepthrecon  # noqa: E402
from xdepthrecon.training.config import AUTOENCODER_TRAINING, DIFFUSION_TRAINING  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "qg_nature_run.nc"
LEVELS, TILE = 50, 128
REFERENCE = {"autoencoder_tiles_per_s": 2.4, "denoiser_forward_s_128": 0.61,
             "denoiser_tiles_per_s_estimate": round(1.0 / (3 * 0.61), 2)}


def training_cube(every: int) -> tuple[xr.Dataset, xr.Dataset]:
    """Every ``every``-th snapshot of the nature run's training years on 50 levels, and its SST."""
    raw = xr.open_dataset(DATA)
    years = raw.time.dt.year
    raw = raw.isel(time=np.flatnonzero(((years <= 2010) | ((years >= 2016) & (years <= 2025))).values)[::every])
    depth = np.geomspace(float(raw.depth[0]), float(raw.depth[-1]), LEVELS)
    thetao = raw.thetao.load().interp(depth=depth).assign_coords(depth=("depth", depth, raw.depth.attrs))
    cube = xdepthrecon.standardize(thetao.to_dataset(name="thetao"))
    return cube, raw.tos.load().rename("sst").to_dataset()


def throughput(model: torch.nn.Module, patch: int, total_s: float) -> dict[str, float]:
    """The last epoch's patches/s and 128 x 128 tiles/s, and the seconds spent outside the epochs."""
    last = model.history[-1]
    tiles = last["samples_per_s"] * patch**2 / TILE**2
    return {"patches_per_s": round(last["samples_per_s"], 2), "patch": patch,
            "tiles_per_s": round(tiles, 3), "epoch_s": round(last["seconds"], 2),
            "setup_s": round(total_s - sum(r["seconds"] for r in model.history), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI size: few snapshots; writes training_speed_quick")
    parser.add_argument("--epochs", type=int, default=3)
    arguments = parser.parse_args()
    every, epochs = (60, 1) if arguments.quick else (3, arguments.epochs)
    cube, sst = training_cube(every)
    began = time.perf_counter()
    ae = xdepthrecon.train_autoencoder(cube, epochs=epochs, progress=False)
    autoencoder = throughput(ae, AUTOENCODER_TRAINING.patch_size, time.perf_counter() - began)
    autoencoder["speedup_vs_reference"] = round(autoencoder["tiles_per_s"] / REFERENCE["autoencoder_tiles_per_s"], 2)
    began = time.perf_counter()
    model = xdepthrecon.train_diffusion(cube, sst, ae, epochs=epochs, progress=False)
    diffusion = throughput(model, DIFFUSION_TRAINING.patch_size, time.perf_counter() - began)
    diffusion["speedup_vs_reference_estimate"] = round(
        diffusion["tiles_per_s"] / REFERENCE["denoiser_tiles_per_s_estimate"], 2)
    write_result("training_speed_quick" if arguments.quick else "training_speed",
                 {"data": f"{DATA.name}, training years, one snapshot in {every}, on {LEVELS} levels",
                  "snapshots": cube.sizes["time"], "epochs": epochs, "reference": REFERENCE,
                  "autoencoder": autoencoder, "diffusion": diffusion})


if __name__ == "__main__":
    main()
