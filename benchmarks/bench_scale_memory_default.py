"""Peak memory of encoding a lazily generated cube to zarr as a new user does: dask's default scheduler.

Issue 18, item 4. A one-epoch autoencoder of the default :class:`~xdepthrecon.AutoencoderConfig` is trained
through the public API on a small lazily generated cube and saved; then, for each time-step count, a fresh
process opens a half-GLORYS cube (50 levels x 1021 x 2160, float32, chunks 1 x 50 x 512 x 512, generated
chunk by chunk with ``dask.array.map_blocks``), loads the autoencoder and runs
``cube.depthrecon.encode(ae).to_zarr(store)``, with no scheduler argument (dask's threaded scheduler) and
nothing set in the environment. Its peak RSS (``ru_maxrss``) is recorded; it must not grow by more than
1.25x from 1 to 8 time steps. Writes benchmarks/results/<name>.json (default scale_memory_default_scheduler).
Run: python benchmarks/bench_scale_memory_default.py [--times 1 2 4 8] [--name ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from bench_scale_memory import lazy_global_cube  # noqa: E402

#: Half of GLORYS12's grid in each horizontal direction: 50 levels, 1021 latitudes, 2160 longitudes.
HALF_GLORYS_SHAPE = (50, 1021, 2160)


def train_model(path: Path, encoder_channels: tuple[int, ...] | None) -> None:
    """One epoch of the default autoencoder (other encoder widths if given) on a small lazy cube, saved to ``path``."""
    import torch

    import xdepthrecon

    torch.manual_seed(0)
    cube = lazy_global_cube(2, (HALF_GLORYS_SHAPE[0], 96, 192), (96, 192)).load()
    deepest = cube.thetao[:, -1]  # the analytic ocean is never that deep: give the level the one above's values
    cube["thetao"][:, -1] = deepest.fillna(cube.thetao[:, -2])
    config = xdepthrecon.AutoencoderConfig()
    if encoder_channels is not None:
        config = dataclasses.replace(config, encoder_channels=encoder_channels)
    ae = xdepthrecon.train_autoencoder(cube, config=config, epochs=1, progress=False)
    ae.save(path)


def measure(times: int, shape: tuple[int, int, int], chunks: tuple[int, int], model: Path, store: Path) -> dict:
    """Encode ``times`` steps of the lazy cube to zarr with dask's default scheduler; memory and time."""
    import dask

    import xdepthrecon

    ae = xdepthrecon.load(model)
    cube = lazy_global_cube(times, shape, chunks)
    began = time.perf_counter()
    cube.depthrecon.encode(ae).to_zarr(store / "latent.zarr", mode="w")
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step_mb = 4 * float(shape[0] * shape[1] * shape[2]) / 2**20
    return {"time_steps": times, "cube_mb": round(times * step_mb, 1),
            "chunk_mb": round(4 * shape[0] * chunks[0] * chunks[1] / 2**20, 1),
            "scheduler": str(dask.config.get("scheduler", None)), "peak_rss_mb": round(peak, 1),
            "encode_s": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--times", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--shape", type=int, nargs=3, default=list(HALF_GLORYS_SHAPE),
                        metavar=("LEVELS", "LATS", "LONS"))
    parser.add_argument("--chunks", type=int, nargs=2, default=[512, 512], metavar=("LAT", "LON"))
    parser.add_argument("--encoder-channels", type=int, nargs="*", default=None,
                        help="encoder widths of the autoencoder (default: AutoencoderConfig's, no spatial halo)")
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="scale_memory_default_scheduler",
                        help="result name (benchmarks/results/<name>.json)")
    args = parser.parse_args()
    shape, chunks = tuple(args.shape), tuple(args.chunks)
    if args.train:
        train_model(args.model, None if args.encoder_channels is None else tuple(args.encoder_channels))
        return
    if args.child:
        with tempfile.TemporaryDirectory() as store:
            print(json.dumps(measure(args.times[0], shape, chunks, args.model, Path(store))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch) / "autoencoder.pt"
        widths = [] if args.encoder_channels is None else ["--encoder-channels", *map(str, args.encoder_channels)]
        subprocess.run([sys.executable, __file__, "--train", "--model", str(model), *widths], check=True)
        for times in args.times:  # a fresh process each, so the peaks do not mix
            command = [sys.executable, __file__, "--child", "--times", str(times), "--model", str(model),
                       "--shape", *map(str, shape), "--chunks", *map(str, chunks)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    peaks = [row["peak_rss_mb"] for row in rows]
    write_result(args.name, {"path": "cube.depthrecon.encode(ae).to_zarr(store), dask's default scheduler",
                             "shape": shape, "chunks": chunks, "runs": rows,
                             "peak_ratio_last_to_first": round(peaks[-1] / peaks[0], 3)})


if __name__ == "__main__":
    main()
