"""Encode/decode throughput through the accessor vs the bare model, fp32 and the fast path; peak memory.

Writes benchmarks/results/encoding.json. Run: python benchmarks/bench_encoding.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import replace

import dask
import dask.array as dsa
import numpy as np
import torch
import xarray as xr

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

import xdepthrecon  # noqa: E402
from xdepthrecon import AutoencoderConfig, DepthBandAutoencoder  # noqa: E402
from xdepthrecon.training.config import AUTOENCODER_TRAINING  # noqa: E402

LEVELS = 50


def glorys_cube(times: int, lats: int, lons: int, chunks: dict[str, int], seed: int = 0) -> xr.Dataset:
    """A lazily generated GLORYS-shaped cube: 50 levels, realistic vertical structure, some land."""
    depth = np.geomspace(0.494, 5727.917, LEVELS)
    state = dsa.random.RandomState(seed)
    noise = state.standard_normal((times, LEVELS, lats, lons), chunks=(chunks["time"], LEVELS, chunks["latitude"],
                                                                        chunks["longitude"])).astype(np.float32)
    lat = np.linspace(-80, 80, lats)
    surface = 28 * np.cos(np.deg2rad(lat))
    profile = np.exp(-depth / 500.0)
    mean = (2 + (surface[None, :] - 2) * profile[:, None])[None, :, :, None].astype(np.float32)
    values = noise * 0.3 + mean
    land = (np.arange(lons)[None, :] % 97 < 10) & (np.arange(lats)[:, None] % 53 < 9)
    values = dsa.where(land[None, None], np.float32(np.nan), values)
    return xr.Dataset(
        {"thetao": (("time", "depth", "latitude", "longitude"), values,
                    {"units": "degC", "standard_name": "sea_water_potential_temperature"})},
        coords={"time": np.arange(times), "depth": ("depth", depth, {"units": "m", "positive": "down"}),
                "latitude": lat, "longitude": np.linspace(-180, 180, lons, endpoint=False)},
    )


def model(seed: int = 0) -> DepthBandAutoencoder:
    torch.manual_seed(seed)
    return DepthBandAutoencoder(LEVELS, 12, depth=np.geomspace(0.494, 5727.917, LEVELS), mean=10.0, std=8.0).eval()


def bare_rate(ae: DepthBandAutoencoder, size: int, fast: bool, repeats: int) -> dict[str, float]:
    """Pixels/s of encode and decode on one tensor (batch 1, size x size)."""
    x = torch.randn(4, LEVELS, size, size) * 8 + 10
    runner = ae
    if fast:
        runner = __import__("copy").deepcopy(ae).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if fast else __import__("contextlib").nullcontext()
    rates = {}
    with torch.no_grad(), context:
        z = runner.encode(x)
        for name, call, arg in (("encode", runner.encode, x), ("decode", runner.decode, z.float())):
            call(arg)
            began = time.perf_counter()
            for _ in range(repeats):
                call(arg)
            rates[name] = repeats * x.shape[0] * size * size / (time.perf_counter() - began)
    return rates


def accessor_rate(ae: DepthBandAutoencoder, cube: xr.Dataset, fast: bool) -> dict[str, float]:
    pixels = cube.sizes["time"] * cube.sizes["latitude"] * cube.sizes["longitude"]
    began = time.perf_counter()
    latents = cube.depthrecon.encode(ae, fast=fast).compute()
    encode_s = time.perf_counter() - began
    began = time.perf_counter()
    latents.depthrecon.decode(ae, fast=fast).compute()
    decode_s = time.perf_counter() - began
    return {"encode": pixels / encode_s, "decode": pixels / decode_s}


def fast_path_error(epochs: int) -> dict[str, float]:
    """Added error (degC) of the fast path on the real sample atlas with a briefly trained autoencoder of the
    benchmark's widths (no linear path; constant learning rate)."""
    atlas = xdepthrecon.open_sample("ocean_atlas")
    config = AutoencoderConfig(latent_channels=12, encoder_channels=(64, 96, 128), decoder_channels=(128, 96, 64),
                               linear_path=False)
    training = replace(AUTOENCODER_TRAINING, lr_schedule="constant", val_fraction=0.0)
    ae = xdepthrecon.train_autoencoder(atlas, config=config, training=training, epochs=epochs, progress=False)
    exact = atlas.depthrecon.encode(ae, fast=False).depthrecon.decode(ae, fast=False).thetao.values
    fast = atlas.depthrecon.encode(ae, fast=True).depthrecon.decode(ae, fast=True).thetao.values
    truth = atlas.thetao.values
    difference = fast - exact
    return {
        "fast_vs_fp32_rms_degC": float(np.sqrt(np.nanmean(difference**2))),
        "fast_vs_fp32_max_degC": float(np.nanmax(np.abs(difference))),
        "fp32_reconstruction_rms_degC": float(np.sqrt(np.nanmean((exact - truth) ** 2))),
        "fast_reconstruction_rms_degC": float(np.sqrt(np.nanmean((fast - truth) ** 2))),
        "training_epochs": epochs,
    }


_MEMORY_SCRIPT = """
import resource, sys, tempfile, time
sys.path.insert(0, {here!r})
import bench_encoding as b
times = int(sys.argv[1])
cube = b.glorys_cube(times, {lats}, {lons}, {{"time": 1, "latitude": 256, "longitude": 256}})
ae = b.model()
began = time.perf_counter()
with tempfile.TemporaryDirectory() as folder:
    cube.depthrecon.encode(ae).to_zarr(folder + "/z.zarr", mode="w")
seconds = time.perf_counter() - began
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, seconds)
"""


def peak_memory(times: int, lats: int, lons: int) -> dict[str, float]:
    """Peak RSS (MB) of a fresh process encoding a lazily generated cube to zarr."""
    here = str(__import__("pathlib").Path(__file__).resolve().parent)
    script = _MEMORY_SCRIPT.format(here=here, lats=lats, lons=lons)
    out = subprocess.run([sys.executable, "-c", script, str(times)], capture_output=True, text=True, check=True)
    rss, seconds = (float(v) for v in out.stdout.split()[-2:])
    cube_mb = times * LEVELS * lats * lons * 4 / 2**20
    return {"time_steps": times, "cube_MB": cube_mb, "chunk_MB": LEVELS * 256 * 256 * 4 / 2**20,
            "peak_rss_MB": rss, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    size, repeats = (64, 1) if args.quick else (256, 3)
    lats, lons = (128, 256) if args.quick else (512, 1024)
    ae = model()
    cube = glorys_cube(2, lats, lons, {"time": 1, "latitude": 256, "longitude": 256})
    results = {}
    for fast in (False, True):
        label = "fast" if fast else "fp32"
        bare = bare_rate(ae, size, fast, repeats)
        through = accessor_rate(ae, cube, fast)
        results[label] = {
            "bare_pixels_per_s": bare,
            "accessor_pixels_per_s": through,
            "overhead_ratio": {k: bare[k] / through[k] for k in bare},
        }
    results["speedup_fast_vs_fp32"] = {k: results["fast"]["accessor_pixels_per_s"][k]
                                       / results["fp32"]["accessor_pixels_per_s"][k] for k in ("encode", "decode")}
    results["fast_path_error"] = fast_path_error(1 if args.quick else 6)
    results["peak_memory"] = [peak_memory(t, lats, lons) for t in ((1, 2) if args.quick else (1, 2, 4))]
    write_result("encoding" + ("_quick" if args.quick else ""), {
        "config": {"levels": LEVELS, "latent": 12, "widths": [64, 96, 128], "bare_tile": size,
                   "cube": [2, LEVELS, lats, lons], "chunks": [1, LEVELS, 256, 256], "dask_scheduler": "threads"},
        **results,
    })


if __name__ == "__main__":
    with dask.config.set(scheduler="threads"):
        main()
