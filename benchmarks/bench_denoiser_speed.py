"""Denoiser speed: network forward per 128x128 tile, and reconstruct per tile, member and DDIM step.

Compares with the reference figure (DESIGN.md: 56.6 M parameters, 0.61 s per 128x128 forward on a 2-core CPU in
fp32, ~30 s per tile and member for 50 DDIM steps; its networks cannot be loaded here, so its measured figure
stands in for it). For the shipped denoiser sizes (and wider ones): the forward per tile at batch 1 and batched,
in the layout the network runs in on this device (channels-last on a CPU), in the default layout, and in bfloat16
autocast. Then ``xdepthrecon.reconstruct`` end to end (classical analysis, sampling, decoding) on a 128 x 128,
50-level grid with the recipe's model sizes (untrained weights: speed, not quality) for one member and 50 steps
and for 16 members and 25 steps, with the default tiles (64 cells, overlap 16) and with one 128-cell tile.
Writes benchmarks/results/denoiser_speed[_quick][_cuda].json. Run: python benchmarks/bench_denoiser_speed.py
[--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import untrained_diffusion, write_result  # noqa: E402
from bench_scale_memory import _temperature, lazy_global_cube, synthetic_profiles  # noqa: E402

import xdepthrecon  # noqa: E402
from xdepthrecon import AutoencoderConfig, DiffusionConfig, LatentDiffusion, SamplingOptions  # noqa: E402
from xdepthrecon.models.unet import ConditionalUNet  # noqa: E402

LATENT, TILE, LEVELS = AutoencoderConfig().latent_channels, 128, 50
CONDITION = LatentDiffusion.condition_channels(LATENT)
REFERENCE = {"parameters_M": 56.6, "forward_s_128": 0.61, "tile_member_50_steps_s": 30.0}
PRECISION = importlib.import_module("xdepthrecon._precision")


def forward_seconds(net: ConditionalUNet, batch: int, repeats: int, device: torch.device, *,
                    layout: str = "native") -> float:
    """Seconds per network call on ``batch`` tiles: ``layout`` "native" (as the network runs on ``device``),
    "default" (contiguous activations) or "bf16" (native layout, bfloat16 autocast)."""
    x = torch.randn(batch, LATENT, TILE, TILE, device=device)
    condition = torch.randn(batch, CONDITION, TILE, TILE, device=device)
    t = torch.full((batch,), 500, device=device)
    context = torch.autocast(device.type, dtype=torch.bfloat16) if layout == "bf16" else contextlib.nullcontext()
    chosen = torch.contiguous_format if layout == "default" else PRECISION.CPU_MEMORY_FORMAT
    native, PRECISION.CPU_MEMORY_FORMAT = PRECISION.CPU_MEMORY_FORMAT, chosen
    try:
        with torch.no_grad(), context:
            net(x, t, condition)
            _synchronize(device)
            began = time.perf_counter()
            for _ in range(repeats):
                net(x, t, condition)
            _synchronize(device)
    finally:
        PRECISION.CPU_MEMORY_FORMAT = native
    return (time.perf_counter() - began) / repeats


def network_rows(configs: list[tuple[int, tuple[int, ...]]], batch: int, device: torch.device) -> list[dict]:
    """Forward seconds per tile of each denoiser size, and its speed-up over the reference's forward."""
    rows = []
    for dim, mults in configs:
        torch.manual_seed(0)
        net = ConditionalUNet(LATENT, CONDITION, dim=dim, mults=mults).eval().to(device)
        row: dict[str, Any] = {"dim": dim, "mults": list(mults),
                               "parameters_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
                               "forward_s_batch1": forward_seconds(net, 1, 3, device)}
        for layout in ("native", "default", "bf16"):
            row[f"forward_s_per_tile_batch{batch}_{layout}"] = forward_seconds(net, batch, 3, device,
                                                                               layout=layout) / batch
        native = row[f"forward_s_per_tile_batch{batch}_native"]
        row["forward_speedup_vs_reference"] = REFERENCE["forward_s_128"] / native
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        print(rows[-1], flush=True)
    return rows


def reconstruct_rows(runs: list[SamplingOptions], device: torch.device) -> list[dict]:
    """``reconstruct`` end to end on a 128 x 128, 50-level grid: seconds per tile of 128 x 128 cells, member and
    step (the grid is one such tile), and the speed-up over the reference's forward (one per step)."""
    cube = lazy_global_cube(1, (LEVELS, TILE, TILE), (TILE, TILE))
    depth = cube.depth.values
    latitude, longitude = np.linspace(-80.0, 90.0, 86), np.arange(-179.0, 180.0, 2.0)
    background = _temperature(latitude[:, None], longitude[None, :], depth[:, None, None])
    model = untrained_diffusion(depth, np.linspace(20.0, 2.0, LEVELS), np.linspace(6.0, 1.0, LEVELS), background,
                                latitude, longitude)
    grid = cube.compute()
    sst = grid.thetao.isel(depth=0).rename("sst").to_dataset()
    sst.sst.attrs = {"units": "degC"}
    profiles = synthetic_profiles(grid, per_step=15)  # DepthDif's ~15 profiles per 128 x 128 tile
    rows = []
    for options in runs:
        xdepthrecon.reconstruct(grid, profiles, sst, model, options=SamplingOptions(members=1, steps=1),
                                device=device).compute()  # warm up
        began = time.perf_counter()
        xdepthrecon.reconstruct(grid, profiles, sst, model, options=options, device=device).compute()
        seconds = time.perf_counter() - began
        per_step = seconds / (options.members * options.steps)
        rows.append({"members": options.members, "steps": options.steps, "tile": options.tile,
                     "overlap": options.overlap, "seconds": round(seconds, 2),
                     "s_per_tile_member_step": round(per_step, 4),
                     "speedup_vs_reference_forward": round(REFERENCE["forward_s_128"] / per_step, 2)})
        print(rows[-1], flush=True)
    return rows


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda; results go to denoiser_speed[_quick][_cuda]")
    args = parser.parse_args()
    device = torch.device(args.device)
    shipped = DiffusionConfig()
    configs = [(shipped.dim, shipped.mults), (32, shipped.mults), (64, (1, 2, 4, 8))]
    batch = 8 if device.type == "cpu" else 32
    rows = network_rows(configs[:1] if args.quick else configs, batch, device)
    runs = [SamplingOptions(members=1, steps=50), SamplingOptions(members=16, steps=25),
            SamplingOptions(members=16, steps=25, tile=TILE, overlap=0, batch_size=4)]
    reconstructs = reconstruct_rows(runs[1:2] if args.quick else runs, device)
    name = "denoiser_speed" + ("_quick" if args.quick else "") + ("_cuda" if device.type == "cuda" else "")
    write_result(name, {"config": {"tile": TILE, "latent": LATENT, "condition": CONDITION, "levels": LEVELS,
                                   "device": str(device), "threads": torch.get_num_threads()},
                        "reference": REFERENCE, "networks": rows, "reconstruct": reconstructs})


if __name__ == "__main__":
    main()
