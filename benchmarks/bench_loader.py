"""Patches/s from a zstd zarr store: PatchDataset vs xbatcher vs reading the whole store; in memory too.

Store: GLORYS-shaped float32 cube (time, 50, lat, lon), zstd-compressed, chunked (1, 50, 256, 256).
Patches: 50 x 128 x 128. Writes benchmarks/results/loader.json. Run: python benchmarks/bench_loader.py
Needs the bench extra: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from xdepthrecon.training.batches import PatchDataset, PrefetchLoader  # noqa: E402

LEVELS, PATCH, CHUNK = 50, 128, 256


def write_store(path: Path, times: int, lats: int, lons: int, seed: int = 0) -> float:
    """A realistic (smooth + small noise, quantised to 0.001 degC as GLORYS is) cube; returns the MB written."""
    import zarr

    rng = np.random.default_rng(seed)
    depth = np.geomspace(0.494, 5727.917, LEVELS)
    lat = np.linspace(-70, 70, lats)
    lon = np.linspace(-180, 180, lons, endpoint=False)
    profile = np.exp(-depth / 500.0)[:, None, None]
    surface = (28 * np.cos(np.deg2rad(lat))[:, None] + 2 * np.sin(np.deg2rad(3 * lon))[None, :])[None]
    values = np.empty((times, LEVELS, lats, lons), dtype=np.float32)
    for t in range(times):
        noise = rng.standard_normal((LEVELS, lats, lons)).astype(np.float32) * 0.05
        values[t] = np.round(2 + (surface - 2) * profile + noise, 3)
    ds = xr.Dataset({"thetao": (("time", "depth", "latitude", "longitude"), values, {"units": "degC"})},
                    coords={"time": np.arange(times), "depth": depth, "latitude": lat, "longitude": lon})
    compressor = zarr.codecs.ZstdCodec(level=3)
    ds.chunk({"time": 1, "depth": LEVELS, "latitude": CHUNK, "longitude": CHUNK}).to_zarr(
        path, mode="w", encoding={"thetao": {"compressors": [compressor]}}, consolidated=True)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def whole_store_rate(path: Path) -> float:
    """Patch-equivalents per second when the whole store is read at once."""
    began = time.perf_counter()
    values = xr.open_zarr(path).thetao.values
    seconds = time.perf_counter() - began
    return values.size / (LEVELS * PATCH * PATCH) / seconds


def xbatcher_rate(path: Path) -> float:
    import xbatcher

    cube = xr.open_zarr(path)
    generator = xbatcher.BatchGenerator(cube[["thetao"]], input_dims={"latitude": PATCH, "longitude": PATCH})
    began = time.perf_counter()
    count = 0
    for batch in generator:
        values = batch.thetao.values
        count += values.size // (LEVELS * PATCH * PATCH)
    return count / (time.perf_counter() - began)


def patch_dataset_rate(thetao: xr.DataArray, batch_size: int | None) -> float:
    dataset = PatchDataset({"y": thetao}, patch_size=PATCH, max_land_fraction=1.0, seed=0)
    source = dataset if batch_size is None else PrefetchLoader(dataset, batch_size)
    began = time.perf_counter()
    count = 0
    for item in source:
        count += 1 if batch_size is None else len(item["y"])
    return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--times", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("LAT", "LON"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cube.zarr"
        megabytes = write_store(path, args.times, *args.size)
        rates = {}
        for repeat in range(2):  # the first pass warms the page cache for every reader alike
            rates = {
                "whole_store": whole_store_rate(path),
                "xbatcher": xbatcher_rate(path),
                "patch_dataset": patch_dataset_rate(xr.open_zarr(path).thetao, None),
                "patch_dataset_prefetch_batch16": patch_dataset_rate(xr.open_zarr(path).thetao, 16),
            }
        in_memory = xr.open_zarr(path).thetao.load()
        rates["patch_dataset_in_memory"] = patch_dataset_rate(in_memory, None)
    write_result("loader", {
        "config": {"store_shape": [args.times, LEVELS, *args.size], "chunks": [1, LEVELS, CHUNK, CHUNK],
                   "patch": [LEVELS, PATCH, PATCH], "compressor": "zstd level 3", "store_MB": megabytes,
                   "dask_scheduler": "threads"},
        "patches_per_s": rates,
        "patch_dataset_vs_whole_store": rates["patch_dataset"] / rates["whole_store"],
        "patch_dataset_vs_xbatcher": rates["patch_dataset"] / rates["xbatcher"],
        "targets": {"vs_whole_store": ">= 0.9", "vs_xbatcher": ">= 1.5", "in_memory": "thousands per second"},
    })


if __name__ == "__main__":
    with dask.config.set(scheduler="threads"):
        main()
