"""Issue 17 diagnostic: how much of the classical guess's error could a network remove, given what the diffusion
model is given? A deterministic CNN regression of ``truth - guess`` on the nature run.

The guess is the analysis of a diffusion model kept by ``bench_nature_run.py --keep-models`` (fitted on the
training snapshots only), run on every training snapshot and every second test snapshot with profiles at one
density (``--density``), simulated as ``bench_nature_run.py`` simulates them, in ``--draws`` independent draws of
the profiles and of the SST's noise (clear sky). The regression is a small U-Net trained by mean squared error,
at the unobserved columns, on the training snapshots of every draw but the last fifth in time (the validation
snapshots, scored, not used to choose anything); the test snapshots of the first draw are scored. Its inputs are
either the departures from the guess that ``LatentDiffusion.prepare`` gives the network (``--inputs departures``:
the SST's departure from the guess's surface level, the profiles' departures at the observed columns) or the
absolute fields the network was once given (``--inputs absolute``: the SST and the observed temperatures,
normalised over the training snapshots); in both, the guess, where profiles were observed and the season.

A regression's gain over the guess is the most a network's ensemble mean can be expected to add from these inputs
at this training budget: the diffusion model's conditional mean estimates the same quantity. The JSON records the
RMSE of the guess and the regression's gain per band, on the validation and test snapshots, at every epoch.
Run: python benchmarks/bench_nature_run_regression.py --models DIR [--density 0.01 --draws 2 --epochs 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import xdepthrecon
from xdepthrecon.baselines.analysis import classical_analysis
from xdepthrecon.evaluation.bands import in_band

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_nature_run as nature  # noqa: E402
from _common import machine, write_result  # noqa: E402

#: Snapshots per optimisation step.
BATCH = 16


def snapshots(model: xdepthrecon.LatentDiffusion, density: float, draw: int) -> dict[str, np.ndarray]:
    """Truth, guess, gridded profiles, SST and day of year at every training and every second test snapshot,
    with profiles and SST noise of draw ``draw``, in time order, and which are test snapshots."""
    plan = nature.Plan(train_every=1, test_every=2, seed=draw)
    truth, sst, test, _ = nature.load(nature.DATA, plan)
    case = nature.observe(truth, sst, test, density, plan)
    guess = classical_analysis(case.profiles, case.sst, case.truth, window=nature.WINDOW, analysis=model.analysis)
    gridded = xdepthrecon.grid_profiles(case.profiles, case.truth, window=nature.WINDOW)
    return {"truth": case.truth.thetao.values, "guess": guess.thetao.values.astype(np.float32),
            "x": gridded.x.values, "observed": gridded.x_mask.values, "sst": case.sst.sst.values,
            "day": case.truth.time.dt.dayofyear.values, "test": test.values}


class Inputs:
    """The regression's input channels and target of a set of snapshots, normalised with the training
    snapshots' spreads."""

    def __init__(self, first: dict[str, np.ndarray], training: np.ndarray, kind: str) -> None:
        guess, miss = first["guess"][training], (first["truth"] - first["guess"])[training]
        self.kind = kind
        self.guess_mean, self.guess_std = guess.mean(axis=(0, 2, 3)), guess.std(axis=(0, 2, 3))
        self.miss_std = miss.std(axis=(0, 2, 3))
        surface = first["sst"][training]
        self.sst_mean, self.sst_std = surface.mean(), surface.std()
        self.departure_std = (surface - first["guess"][training, 0]).std()

    def __call__(self, data: dict[str, np.ndarray], index: np.ndarray) -> tuple[torch.Tensor, ...]:
        level = lambda values: values[:, :, None, None]  # noqa: E731
        guess, observed = data["guess"][index], data["observed"][index]
        columns = observed.any(axis=1)
        normalised = (guess - level(self.guess_mean[None])) / level(self.guess_std[None])
        if self.kind == "departures":
            profiles = np.where(observed, data["x"][index] - guess, 0.0) / level(self.miss_std[None])
            surface = (data["sst"][index] - guess[:, 0]) / self.departure_std
        else:
            profiles = np.where(observed, (data["x"][index] - level(self.guess_mean[None])) /
                                level(self.guess_std[None]), 0.0)
            surface = (data["sst"][index] - self.sst_mean) / self.sst_std
        angle = 2 * np.pi * data["day"][index] / 365.25
        season = np.broadcast_to(np.stack([np.sin(angle), np.cos(angle)], axis=1)[:, :, None, None],
                                 (len(index), 2, *guess.shape[-2:]))
        channels = np.concatenate([normalised, profiles, columns[:, None], surface[:, None], season], axis=1)
        target = (data["truth"][index] - guess) / level(self.miss_std[None])
        return (torch.from_numpy(channels.astype(np.float32)), torch.from_numpy(target.astype(np.float32)),
                torch.from_numpy(~columns))


def block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.GroupNorm(8, outputs), nn.GELU(),
                         nn.Conv2d(outputs, outputs, 3, padding=1), nn.GroupNorm(8, outputs), nn.GELU())


class Regression(nn.Module):
    """A three-resolution U-Net whose head starts at zero (it returns the guess)."""

    def __init__(self, inputs: int, levels: int, width: int) -> None:
        super().__init__()
        self.down = nn.ModuleList([block(inputs, width), block(width, 2 * width), block(2 * width, 4 * width)])
        self.up = nn.ModuleList([block(6 * width, 2 * width), block(3 * width, width)])
        self.head = nn.Conv2d(width, levels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.down[0](x)
        second = self.down[1](nn.functional.avg_pool2d(first, 2))
        third = self.down[2](nn.functional.avg_pool2d(second, 2))
        second = self.up[0](torch.cat([second, nn.functional.interpolate(third, scale_factor=2)], 1))
        return self.head(self.up[1](torch.cat([first, nn.functional.interpolate(second, scale_factor=2)], 1)))


@torch.no_grad()
def band_gains(net: Regression, inputs: tuple[torch.Tensor, ...], spread: np.ndarray, depth: np.ndarray
               ) -> dict[str, dict[str, float]]:
    """Per band: the guess's RMSE (degC) and the regression's gain over it (%), at the unobserved columns."""
    x, target, unobserved = inputs
    net.eval()
    prediction = torch.cat([net(x[i:i + 32]) for i in range(0, len(x), 32)])
    net.train()
    weight = unobserved[:, None].expand_as(target).double()
    scale = torch.from_numpy(spread).double()[None, :, None, None]
    before = ((target * scale) ** 2 * weight).sum(dim=(0, 2, 3)) / weight.sum(dim=(0, 2, 3))
    after = (((target - prediction) * scale) ** 2 * weight).sum(dim=(0, 2, 3)) / weight.sum(dim=(0, 2, 3))
    scores = {}
    for index, (low, high) in enumerate(nature.BANDS):
        within = torch.from_numpy(in_band(depth, (low, high), last=index == len(nature.BANDS) - 1))
        guess, regression = before[within].mean().sqrt(), after[within].mean().sqrt()
        scores[f"{low:g}-{high:g} m"] = {"guess_rmse": round(float(guess), 4),
                                        "gain_percent": round(float(100 * (1 - regression / guess)), 1)}
    return scores


def run(models: Path, density: float, draws: int, epochs: int, width: int, kind: str) -> dict[str, Any]:
    torch.manual_seed(0)
    model = xdepthrecon.load(models / "diffusion.safetensors")
    started = time.perf_counter()
    data = [snapshots(model, density, draw) for draw in range(draws)]
    guessing = time.perf_counter() - started
    times = np.flatnonzero(~data[0]["test"])
    training, validation = times[:int(0.8 * times.size)], times[int(0.8 * times.size):]
    make = Inputs(data[0], training, kind)
    parts = [make(draw, training) for draw in data]
    x, target, unobserved = (torch.cat(values) for values in zip(*parts))
    scored = {"validation": make(data[0], validation), "test": make(data[0], np.flatnonzero(data[0]["test"]))}
    depth = np.asarray(model.analysis.depth.cpu().numpy(), dtype=float)
    net = Regression(x.shape[1], target.shape[1], width)
    optimiser = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 1e-3, total_steps=epochs * (len(x) // BATCH))
    history = []
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(order) - BATCH + 1, BATCH):
            chosen = order[start:start + BATCH]
            inputs, wanted, weight = x[chosen], target[chosen], unobserved[chosen][:, None].float()
            if torch.rand(1) < 0.5:  # east-west flips
                inputs, wanted, weight = inputs.flip(-1), wanted.flip(-1), weight.flip(-1)
            loss = ((net(inputs) - wanted) ** 2 * weight).sum() / (weight.sum() * wanted.shape[1])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        history.append({"epoch": epoch, **{name: band_gains(net, part, make.miss_std, depth)
                                           for name, part in scored.items()}})
        print(epoch, history[-1]["test"], file=sys.stderr, flush=True)
    return {"density": density, "draws": draws, "epochs": epochs, "width": width, "inputs": kind,
            "parameters": sum(p.numel() for p in net.parameters()), "training_snapshots": int(training.size),
            "validation_snapshots": int(validation.size), "test_snapshots": int(data[0]["test"].sum()),
            "guess_seconds": round(guessing, 1), "training_seconds": round(time.perf_counter() - started, 1),
            "models": str(models), "final": history[-1], "history": history, "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="folder bench_nature_run.py --keep-models wrote")
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--inputs", choices=("departures", "absolute"), default="departures")
    args = parser.parse_args()
    payload = run(args.models, args.density, args.draws, args.epochs, args.width, args.inputs)
    write_result(f"nature_run_regression_{args.inputs}", payload)


if __name__ == "__main__":
    main()
