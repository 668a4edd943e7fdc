"""Denoiser speed: forward time per 128x128 tile and reconstruction s/tile/member for 50 DDIM steps.

Compares our ConvNeXt U-Net sizes with the reference figure (DESIGN.md: 56.6 M parameters, 0.61 s per
128x128 forward on a 2-core CPU in fp32, ~30 s per tile for 50 DDIM steps). Writes
benchmarks/results/denoiser_speed[_quick][_cuda].json. Run: python benchmarks/bench_denoiser_speed.py
[--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from xdepthrecon import LatentDiffusion  # noqa: E402
from xdepthrecon.diffusion import NoiseSchedule, sample  # noqa: E402
from xdepthrecon.models.unet import ConditionalUNet  # noqa: E402

LATENT, TILE = 12, 128
CONDITION = LatentDiffusion.condition_channels(LATENT)
REFERENCE = {"parameters_M": 56.6, "forward_s_128": 0.61, "tile_member_50_steps_s": 30.0}


def forward_seconds(net: ConditionalUNet, batch: int, fast: bool, repeats: int, device: torch.device) -> float:
    x = torch.randn(batch, LATENT, TILE, TILE, device=device)
    condition = torch.randn(batch, CONDITION, TILE, TILE, device=device)
    t = torch.full((batch,), 500, device=device)
    runner = net
    if fast:
        runner = net.to(memory_format=torch.channels_last)
        x, condition = (v.contiguous(memory_format=torch.channels_last) for v in (x, condition))
    context = torch.autocast(device.type, dtype=torch.bfloat16) if fast else contextlib.nullcontext()
    with torch.no_grad(), context:
        runner(x, t, condition)
        _synchronize(device)
        began = time.perf_counter()
        for _ in range(repeats):
            runner(x, t, condition)
        _synchronize(device)
    return (time.perf_counter() - began) / repeats


def sampling_seconds(net: ConditionalUNet, members: int, steps: int, device: torch.device, fast: bool = False) -> float:
    """Wall time of ``steps`` DDIM steps for one tile and ``members`` members batched, per member."""
    condition = torch.randn(members, CONDITION, TILE, TILE, device=device)
    schedule = NoiseSchedule("cosine", 1000, "x0")
    context = torch.autocast(device.type, dtype=torch.bfloat16) if fast else contextlib.nullcontext()

    def denoiser(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with context:
            return net(z, t, condition).float()

    _synchronize(device)
    began = time.perf_counter()
    with torch.no_grad():
        sample(denoiser, (members, LATENT, TILE, TILE), schedule, steps=steps,
               generator=torch.Generator().manual_seed(0), device=device)
    _synchronize(device)
    return (time.perf_counter() - began) / members


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda; results go to denoiser_speed[_quick][_cuda]")
    args = parser.parse_args()
    device = torch.device(args.device)
    configs = [(16, (1, 2, 4)), (32, (1, 2, 4)), (64, (1, 2, 4, 8))]
    batch = 8 if device.type == "cpu" else 32
    rows = []
    for dim, mults in configs[:2] if args.quick else configs:
        torch.manual_seed(0)
        net = ConditionalUNet(LATENT, CONDITION, dim=dim, mults=mults).eval().to(device)
        row = {"dim": dim, "mults": list(mults), "parameters_M": sum(p.numel() for p in net.parameters()) / 1e6,
               "forward_s_batch1": forward_seconds(net, 1, False, 3, device),
               f"forward_s_per_tile_batch{batch}": forward_seconds(net, batch, False, 2, device) / batch,
               f"forward_s_per_tile_batch{batch}_bf16_channels_last":
                   forward_seconds(net, batch, True, 2, device) / batch}
        steps = 5 if args.quick else 50
        row[f"tile_member_{steps}_steps_s_batch{batch}"] = sampling_seconds(net, batch, steps, device)
        row["tile_member_50_steps_s_estimate"] = row[f"tile_member_{steps}_steps_s_batch{batch}"] * 50 / steps
        if device.type == "cuda":
            row[f"tile_member_{steps}_steps_s_batch{batch}_bf16"] = sampling_seconds(net, batch, steps, device, True)
        row["speedup_vs_reference_50_steps"] = (REFERENCE["tile_member_50_steps_s"]
                                                / row["tile_member_50_steps_s_estimate"])
        rows.append(row)
        print(row, flush=True)
    name = "denoiser_speed" + ("_quick" if args.quick else "") + ("_cuda" if device.type == "cuda" else "")
    write_result(name, {"config": {"tile": TILE, "latent": LATENT, "condition": CONDITION, "device": str(device),
                                   "threads": torch.get_num_threads()},
                        "reference": REFERENCE, "rows": rows})


if __name__ == "__main__":
    main()
