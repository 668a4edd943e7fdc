"""Gridding throughput: a million synthetic Argo-like profiles onto a global 1-degree, 50-level weekly cube.

Run ``python benchmarks/bench_gridding.py [n_profiles]``; writes ``benchmarks/results/gridding.json``.
Only :func:`xdepthrecon.grid_profiles` is timed (vertical interpolation, cell and window matching,
averaging, land masking), not building the synthetic profiles.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.gridding import grid_profiles
from xdepthrecon.io.profiles import profiles_dataset

#: The 50 depth levels (m) of GLORYS12.
GLORYS_LEVELS = np.array([
    0.494025, 1.541375, 2.645669, 3.819495, 5.078224, 6.440614, 7.92956, 9.572997, 11.405, 13.46714,
    15.81007, 18.49556, 21.59882, 25.21141, 29.44473, 34.43415, 40.34405, 47.37369, 55.76429, 65.80727,
    77.85385, 92.32607, 109.7293, 130.666, 155.8507, 186.1256, 222.4752, 266.0403, 318.1274, 380.213,
    453.9377, 541.0889, 643.5668, 763.3331, 902.3393, 1062.44, 1245.291, 1452.251, 1684.284, 1941.893,
    2225.078, 2533.336, 2865.703, 3220.82, 3597.032, 3992.484, 4405.224, 4833.291, 5274.784, 5727.917,
])
SAMPLES = 60
RESULT = Path(__file__).resolve().parent / "results" / "gridding.json"


def synthetic_profiles(n: int, seed: int = 0) -> xr.Dataset:
    """Argo-like profiles: 60 samples from ~5 m to ~2000 m, uniform over the ocean surface and 2020."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.5, 1.5, (n, SAMPLES)) * (2000.0 / SAMPLES)
    depth = (np.cumsum(steps, axis=1) - steps[:, :1] + rng.uniform(2.0, 8.0, (n, 1))).astype("float32")
    lat = np.rad2deg(np.arcsin(rng.uniform(-0.98, 0.98, n)))
    lon = rng.uniform(-180.0, 180.0, n)
    temperature = (2.0 + 26.0 * np.cos(np.deg2rad(lat))[:, None] * np.exp(-depth / 400.0)).astype("float32")
    start = np.datetime64("2020-01-01", "ns")
    times = start + (rng.uniform(0.0, 366.0, n) * 86400e9).astype("timedelta64[ns]")
    return profiles_dataset(temperature, depth, lat, lon, time=times, attrs={})


def cube_like() -> xr.Dataset:
    """A global 1-degree cube with GLORYS levels and 52 weekly times; thetao lazy zeros (all ocean)."""
    times = pd.date_range("2020-01-04", periods=52, freq="7D")
    shape = (times.size, GLORYS_LEVELS.size, 180, 360)
    thetao = da.zeros(shape, dtype="float32", chunks=(1, GLORYS_LEVELS.size, 180, 360))
    return xr.Dataset(
        {"thetao": (("time", "depth", "latitude", "longitude"), thetao)},
        coords={"time": times, "depth": GLORYS_LEVELS, "latitude": np.arange(-89.5, 90.0, 1.0),
                "longitude": np.arange(-179.5, 180.0, 1.0)},
    )


def main(n: int = 1_000_000) -> dict:
    profiles, like = synthetic_profiles(n), cube_like()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        gridded = grid_profiles(profiles, like=like, window="7D")
        seconds = time.perf_counter() - started
    result = {
        "benchmark": "grid_profiles",
        "profiles": n,
        "samples_per_profile": SAMPLES,
        "cube": "global 1 deg (180 x 360), 50 GLORYS levels, 52 weekly times, window 7D, land mask read",
        "seconds": round(seconds, 3),
        "profiles_per_second": round(n / seconds),
        "profiles_used": gridded.attrs["profiles_used"],
        "observed_values": int(gridded.x_mask.sum()),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
