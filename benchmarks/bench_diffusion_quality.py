"""The quality bar of the latent diffusion model: an OSSE on the bundled atlas beside every baseline.

Truth: the bundled monthly atlas; SST: the independent COADS climatology; profiles sampled from the
truth with 0.01 degC noise; regions and months held out from training. The autoencoder and the
diffusion model are trained on the training part only; every method is scored on the held-out
regions at the held-out months, per depth and per band (0-100, 100-300, 300-1000 m).
Writes benchmarks/results/diffusion_quality.json. Run: python benchmarks/bench_diffusion_quality.py
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
from xdepthrecon.osse import band_scores, osse_case, score_case, standard_baselines  # noqa: E402

#: The OSSE of the evaluation issue's benchmark (benchmarks/bench_baselines.py uses the same split).
TEST_REGIONS = [(20.0, 50.0, -60.0, -20.0), (-40.0, -10.0, -150.0, -110.0), (-30.0, 0.0, 60.0, 90.0)]
TEST_TIMES = [1, 5, 9]
DENSITY = 10.0  # profiles per 10^6 km^2 of ocean per time step (a few % of the atlas' ocean columns)


def diffusion_method(model, members: int, steps: int, test_times: np.ndarray, **options):
    """An OSSE method that reconstructs the test months only (the others are not scored) with ``model``."""

    def method(profiles, sst, grid, training):
        cube = grid.assign(thetao=xr.zeros_like(grid.ocean, dtype="float32").where(grid.ocean))
        selected = cube.isel(time=np.flatnonzero(test_times))
        result = xdepthrecon.reconstruct(selected, profiles, sst, model, members=members, steps=steps,
                                         keep_members=True, **options).compute()
        return result.reindex(time=grid.time)

    return method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--ae-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-context", action="store_true", help="no FiLM on position and season")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.ae_epochs, args.epochs, args.members, args.steps = 2, 2, 2, 5
    torch.manual_seed(0)
    atlas = xdepthrecon.open_sample("ocean_atlas")
    coads = xdepthrecon.open_sample("coads_sst")
    case = osse_case(atlas, coads, density=DENSITY, test_regions=TEST_REGIONS, test_times=TEST_TIMES, noise=0.01,
                     seed=0, window="month")
    began = time.perf_counter()
    ae = xdepthrecon.train_autoencoder(case.training, latent_channels=args.latent, epochs=args.ae_epochs,
                                       patch_size=args.patch, batch_size=16, lr=1e-3, val_fraction=0.1,
                                       progress=False)
    ae_seconds = time.perf_counter() - began
    fraction = case.info["observed_column_fraction"]
    began = time.perf_counter()
    model = xdepthrecon.train_diffusion(case.training, coads, ae, density=(fraction / 3, fraction * 3),
                                        epochs=args.epochs, patch_size=args.patch, batch_size=16, lr=args.lr,
                                        dim=args.dim, mults=(1, 2, 4), progress=False, ema=0.999,
                                        context=not args.no_context)
    diffusion_seconds = time.perf_counter() - began
    methods = {**standard_baselines(window="month"),
               "diffusion": diffusion_method(model, args.members, args.steps, case.test_times.values,
                                             tile=64, overlap=16, window="month")}
    table = score_case(case, methods)
    bands = band_scores(table)
    held_out = bands[(bands.region == "held_out") & (bands.columns == "all")]
    summary = held_out.pivot_table(index=["method", "band"], columns="metric", values="value").round(4)
    print(summary.to_string())
    write_result("diffusion_quality" + ("_quick" if args.quick else ""), {
        "config": {**vars(args), "test_regions": TEST_REGIONS, "test_times": TEST_TIMES, "density": DENSITY,
                   **case.info},
        "training_seconds": {"autoencoder": ae_seconds, "diffusion": diffusion_seconds},
        "history": {"autoencoder": ae.history, "diffusion": model.history},
        "method_seconds": table.attrs.get("seconds"),
        "held_out_bands": summary.reset_index().to_dict(orient="records"),
        "scores": table.to_dict(orient="records"),
    })


if __name__ == "__main__":
    main()
