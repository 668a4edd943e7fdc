"""Peak memory of encode, decode and reconstruct streamed to zarr on lazily generated global cubes.

A global cube (time x 50 x 2041 x 4320 by default, float32, 1.76 GB per time step) is generated lazily
chunk by chunk (an analytic stratification with land that deepens towards the coasts); the demo-size
autoencoder encodes it to a zarr store and decodes that store to another, for 1, 2 and 4 time steps,
each count in a fresh process; then a smaller global cube is reconstructed (untrained demo-size model,
synthetic profiles) for the same counts. The peak resident memory must not grow with the time steps.
Writes benchmarks/results/scale_memory.json and scale_memory_reconstruct.json. Run:
python benchmarks/bench_scale_memory.py, then
python benchmarks/bench_scale_memory.py --task reconstruct --shape 20 360 720 --chunks 180 360
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import untrained_diffusion, write_result  # noqa: E402

#: GLORYS12's grid: 50 levels, 2041 latitudes (1/12 degree, 80S..90N), 4320 longitudes.
GLORYS_SHAPE = (50, 2041, 4320)


def _temperature_block(block_info=None) -> np.ndarray:
    """Analytic temperature of one chunk: warm surface, cold depths, land where the bottom is shallower."""
    info = block_info[None]
    (t0, t1), _, (y0, y1), (x0, x1) = info["array-location"]
    _, levels, lats, lons = info["shape"]
    depth = np.geomspace(0.5, 5700.0, levels)[:, None, None]
    lat = np.linspace(-80.0, 90.0, lats)[y0:y1, None]
    lon = (-180.0 + (np.arange(lons) + 0.5) * 360.0 / lons)[None, x0:x1]
    bottom = 5500.0 * (0.55 + 0.45 * np.sin(np.deg2rad(2 * lon)) * np.cos(np.deg2rad(3 * lat)))
    values = _temperature(lat, lon, depth)
    values = np.where(depth < bottom - 300.0, values, np.nan).astype(np.float32)
    return np.broadcast_to(values, (t1 - t0, *values.shape)).copy()


def lazy_global_cube(times: int, shape: tuple[int, int, int], chunks: tuple[int, int]):
    """A CF-annotated global cube generated chunk by chunk (nothing is held in memory)."""
    import dask.array as dsa
    import pandas as pd
    import xarray as xr

    levels, lats, lons = shape
    data = dsa.map_blocks(_temperature_block, dtype=np.float32,
                          chunks=((1,) * times, (levels,), *(dsa.core.normalize_chunks(c, (n,))[0]
                                                             for c, n in zip(chunks, (lats, lons)))))
    coords = {"time": pd.date_range("2020-01-01", periods=times, freq="D"),
              "depth": ("depth", np.geomspace(0.5, 5700.0, levels), {"units": "m", "positive": "down"}),
              "latitude": ("latitude", np.linspace(-80.0, 90.0, lats), {"units": "degrees_north"}),
              "longitude": ("longitude", -180.0 + (np.arange(lons) + 0.5) * 360.0 / lons, {"units": "degrees_east"})}
    thetao = xr.DataArray(data, dims=("time", "depth", "latitude", "longitude"), coords=coords,
                          attrs={"units": "degC", "standard_name": "sea_water_potential_temperature"})
    return thetao.to_dataset(name="thetao")


def _temperature(latitude: np.ndarray, longitude: np.ndarray, depth: np.ndarray) -> np.ndarray:
    surface = 2.0 + 26.0 * np.cos(np.deg2rad(latitude)) + 0.5 * np.sin(np.deg2rad(3 * longitude))
    return 1.0 + (surface - 1.0) * np.exp(-depth / 400.0)


def synthetic_profiles(cube, per_step: int, seed: int = 0):
    """Profiles of the analytic ocean at random places and cube times (nothing computed from the cube)."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    count = per_step * cube.sizes["time"]
    latitude = rng.uniform(-70.0, 70.0, count)
    longitude = rng.uniform(-180.0, 180.0, count)
    depth = np.broadcast_to(cube.depth.values, (count, cube.sizes["depth"]))
    values = _temperature(latitude[:, None], longitude[:, None], depth).astype(np.float32)
    time = np.repeat(cube.time.values, per_step)
    return xr.Dataset({"temperature": (("profile", "level"), values)},
                      coords={"latitude": ("profile", latitude), "longitude": ("profile", longitude),
                              "time": ("profile", time), "depth": (("profile", "level"), depth)})


def measure_reconstruct(times: int, shape: tuple[int, int, int], chunks: tuple[int, int], store: Path) -> dict:
    """Reconstruct ``times`` steps of the lazy cube to zarr (untrained demo-size model: memory, not quality)."""
    import xdepthrecon

    cube = lazy_global_cube(times, shape, chunks)
    depth = cube.depth.values
    latitude, longitude = np.linspace(-80.0, 90.0, 86), np.arange(-179.0, 180.0, 2.0)  # a 2-degree background
    background = _temperature(latitude[:, None], longitude[None, :], depth[:, None, None])
    model = untrained_diffusion(depth, np.linspace(20.0, 2.0, shape[0]), np.linspace(6.0, 1.0, shape[0]),
                                background, latitude, longitude)
    sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    profiles = synthetic_profiles(cube, per_step=2000)
    before = _rss_mb()
    began = time.perf_counter()
    options = xdepthrecon.SamplingOptions(members=4, steps=3, tile=128, overlap=16)
    cube.depthrecon.reconstruct(profiles, sst, model, options=options).to_zarr(store / "reconstruction.zarr",
                                                                                mode="w")
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"time_steps": times, "cube_mb": round(times * 4 * float(np.prod(shape)) / 2**20, 1),
            "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1), "peak_growth_mb": round(peak - before, 1),
            "reconstruct_s": round(seconds, 2)}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def measure(times: int, shape: tuple[int, int, int], chunks: tuple[int, int], store: Path) -> dict:
    """Encode and decode ``times`` steps to zarr in this process; memory and time figures."""
    import torch

    import xdepthrecon

    torch.manual_seed(0)
    cube = lazy_global_cube(times, shape, chunks)
    ae = xdepthrecon.DepthBandAutoencoder(shape[0], latent_channels=8, encoder_channels=(32, 48, 64),
                                          decoder_channels=(64, 48, 32), depth=cube.depth.values,
                                          mean=np.linspace(20.0, 2.0, shape[0]), std=np.linspace(6.0, 1.0, shape[0]))
    before = _rss_mb()
    began = time.perf_counter()
    cube.depthrecon.encode(ae).to_zarr(store / "latent.zarr", mode="w")
    encoded = time.perf_counter()
    import xarray as xr

    xr.open_zarr(store / "latent.zarr").depthrecon.decode(ae).to_zarr(store / "decoded.zarr", mode="w")
    decoded = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step_mb = 4 * float(np.prod(shape)) / 2**20
    return {"time_steps": times, "cube_mb": round(times * step_mb, 1), "chunk_mb": round(
        4 * shape[0] * chunks[0] * chunks[1] / 2**20, 1), "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1), "peak_growth_mb": round(peak - before, 1),
        "encode_s": round(encoded - began, 2), "decode_s": round(decoded - encoded, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--times", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--shape", type=int, nargs=3, default=list(GLORYS_SHAPE), metavar=("LEVELS", "LATS", "LONS"))
    parser.add_argument("--chunks", type=int, nargs=2, default=[512, 1080], metavar=("LAT", "LON"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=("codec", "reconstruct"), default="codec",
                        help="encode+decode (default) or reconstruct (use a smaller --shape on a CPU)")
    parser.add_argument("--name", default="scale_memory", help="result name (benchmarks/results/<name>.json)")
    args = parser.parse_args()
    shape, chunks = tuple(args.shape), tuple(args.chunks)
    if args.child:
        task = measure if args.task == "codec" else measure_reconstruct
        with tempfile.TemporaryDirectory() as store:
            print(json.dumps(task(args.times[0], shape, chunks, Path(store))))
        return
    rows = []
    for times in args.times:  # a fresh process each, so the peaks do not mix
        command = [sys.executable, __file__, "--child", "--task", args.task, "--times", str(times),
                   "--shape", *map(str, shape), "--chunks", *map(str, chunks)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    growth = [row["peak_growth_mb"] for row in rows]
    name = args.name + ("" if args.task == "codec" else f"_{args.task}")
    write_result(name, {"task": args.task, "shape": shape, "chunks": chunks, "runs": rows,
                        "growth_ratio_last_to_first": round(growth[-1] / max(growth[0], 1.0), 3)})


if __name__ == "__main__":
    main()
