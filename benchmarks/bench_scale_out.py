"""Scale-out throughput: a dask.distributed LocalCluster vs one process, DDP 2 processes vs 1, device figures.

1. ``reconstruct`` of several time steps of the bundled atlas (demo-size model; weights untrained, speed
   does not depend on them) computed by the default threaded scheduler and by a LocalCluster of 2
   single-threaded workers; wall times and whether the results are equal.
2. ``train_autoencoder`` epochs/s with ``torchrun --nproc_per_node 1`` and ``2`` (gloo on the CPU, NCCL
   on GPUs): global samples/s from the training history.
3. On whatever device is present (CPU here; the GPU when one is): AE training samples/s, loader
   patches/s into the device, and reconstruction s/tile/member for 50 DDIM steps.

Writes benchmarks/results/scale_out.json. Run: python benchmarks/bench_scale_out.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import untrained_diffusion, write_result  # noqa: E402

import xdepthrecon  # noqa: E402
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader  # noqa: E402
from xdepthrecon.diffusion.latent import LatentDiffusion  # noqa: E402
from xdepthrecon.tiling import Tiling  # noqa: E402
from xdepthrecon.training.loop import pick_device  # noqa: E402

TRAIN_SCRIPT = """
import json, os, sys, xdepthrecon
cube = xdepthrecon.open_sample("ocean_atlas")
ae = xdepthrecon.train_autoencoder(cube, epochs=int(sys.argv[2]), progress=False)
if os.environ["RANK"] == "0":
    with open(sys.argv[1], "w") as f:
        json.dump(ae.history, f)
"""


def _model(cube, device: torch.device) -> LatentDiffusion:
    """A demo-size latent diffusion model with untrained weights (speed only); the atlas's time mean (land
    filled with each level's mean) is its analysis's background."""
    values = cube.thetao.values
    mean, std = np.nanmean(values, axis=(0, 2, 3)), np.nanstd(values, axis=(0, 2, 3))
    climate = cube.thetao.mean("time").values
    background = np.where(np.isnan(climate), mean[:, None, None], climate)
    return untrained_diffusion(cube.depth.values, mean, std, background, cube.latitude.values,
                               cube.longitude.values).to(device)


def cluster_vs_single(cube, sst, profiles, times: int, members: int, steps: int) -> dict:
    from distributed import Client, LocalCluster

    model = _model(cube, torch.device("cpu"))
    options = dict(options=xdepthrecon.SamplingOptions(members=members, steps=steps, tile=64, overlap=16), seed=0,
                   device="cpu")
    grid = cube.isel(time=slice(0, times)).chunk({"time": 1})
    began = time.perf_counter()
    single = xdepthrecon.reconstruct(grid, profiles, sst, model, **options).compute()
    single_s = time.perf_counter() - began
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        began = time.perf_counter()
        clustered = client.compute(xdepthrecon.reconstruct(grid, profiles, sst, model, **options)).result()
        cluster_s = time.perf_counter() - began
    difference = float(np.nanmax(np.abs(clustered.thetao.values - single.thetao.values)))
    return {"time_steps": times, "members": members, "steps": steps, "single_process_s": round(single_s, 2),
            "local_cluster_2x1_s": round(cluster_s, 2), "speedup": round(single_s / cluster_s, 3),
            "max_abs_difference_degC": difference}


def ddp_throughput(epochs: int) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "train.py"
        script.write_text(TRAIN_SCRIPT)
        for processes in (1, 2):
            history_path = Path(folder) / f"history{processes}.json"
            threads = str(max(1, (os.cpu_count() or 2) // processes))
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                            str(processes), str(script), str(history_path), str(epochs)], check=True,
                           capture_output=True, env={**os.environ, "OMP_NUM_THREADS": threads})
            wall = time.perf_counter() - began
            history = json.loads(history_path.read_text())
            rows[processes] = {"threads_per_process": int(threads), "wall_s": round(wall, 1),
                               "samples_per_s": round(float(np.mean([h["samples_per_s"] for h in history[1:]])), 1),
                               "final_val_loss": round(history[-1]["val_loss"], 4)}
    return {"epochs": epochs, "processes": rows,
            "speedup": round(rows[2]["samples_per_s"] / rows[1]["samples_per_s"], 3)}


def device_figures(cube, sst, profiles, quick: bool) -> dict:
    device = pick_device(None)
    began = time.perf_counter()
    ae = xdepthrecon.train_autoencoder(cube, epochs=2 if quick else 4, progress=False, device=device)
    ae_s = time.perf_counter() - began
    dataset = PatchDataset({"y": cube.thetao}, patch_size=64, seed=0)
    began, patches = time.perf_counter(), 0
    for batch in PrefetchLoader(dataset, 16, device=device):
        patches += len(batch["y"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    loader_rate = patches / (time.perf_counter() - began)
    model = _model(cube, device)
    steps, members = (10, 2) if quick else (50, 4)
    began = time.perf_counter()
    options = xdepthrecon.SamplingOptions(members=members, steps=steps, tile=64, overlap=16)
    xdepthrecon.reconstruct(cube.isel(time=[0]), profiles, sst, model, options=options, device=device).compute()
    seconds = time.perf_counter() - began
    tiles = len(Tiling(cube.sizes["latitude"], cube.sizes["longitude"], 64, 16, periodic=True).tiles())
    return {"device": str(device), "ae_training_samples_per_s": round(float(np.mean(
        [h["samples_per_s"] for h in ae.history[1:]])), 1), "ae_training_s": round(ae_s, 1),
        "loader_patches_per_s": round(loader_rate, 1),
        "reconstruct_s_per_tile_member_50_steps": round(seconds / tiles / members * 50 / steps, 3),
        "tiles_per_time_step": tiles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script, proves nothing")
    args = parser.parse_args()
    cube = xdepthrecon.open_sample("ocean_atlas")
    sst = xdepthrecon.open_sample("coads_sst")
    profiles = cube.depthrecon.sample_profiles(density=0.9, seed=0)
    result = {"cluster": cluster_vs_single(cube, sst, profiles, times=2 if args.quick else 6,
                                           members=2 if args.quick else 4, steps=3 if args.quick else 10),
              "ddp": ddp_throughput(epochs=2 if args.quick else 4),
              "device": device_figures(cube, sst, profiles, args.quick)}
    write_result("scale_out" + ("_quick" if args.quick else ""), result)


if __name__ == "__main__":
    main()
