"""Shared helpers of the benchmark scripts: machine facts and JSON results under benchmarks/results/."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy
    import torch

    import xdepthrecon
    from xdepthrecon._precision import bf16_pays

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_pays": bf16_pays(torch.device("cpu")),
        "numpy": numpy.__version__,
        "xdepthrecon": xdepthrecon.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with the date and machine facts to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"benchmark": name, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "machine": machine(), **payload}
    path.write_text(json.dumps(document, indent=2, default=float) + "\n")
    print(json.dumps(document, indent=2, default=float))
    return path


def untrained_diffusion(depth, mean, std, background, latitude, longitude):
    """A :class:`~xdepthrecon.LatentDiffusion` of the recipe's sizes with untrained weights: speed and memory
    figures, not quality (its denoiser runs every step; an untrained one returns the analysis's guess).

    ``depth`` (m), ``mean`` and ``std`` (degC, per level) set the autoencoder's levels and normalisation. The
    analysis's background is ``background`` (level, latitude, longitude; degC, finite) on the grid
    ``latitude``, ``longitude`` at every time, with no SST term; its departures have a Matern 3/2 covariance
    of 300 km at every level.
    """
    import numpy as np
    import torch

    from xdepthrecon import Analysis, AutoencoderConfig, DepthBandAutoencoder, DiffusionConfig, LatentDiffusion
    from xdepthrecon.analysis.background import SeasonalBackground
    from xdepthrecon.analysis.departures import DepartureAnalysis
    from xdepthrecon.diffusion import NoiseSchedule
    from xdepthrecon.models.unet import ConditionalUNet
    from xdepthrecon.stats.covariance import Covariance

    torch.manual_seed(0)
    levels, autoencoder, diffusion = len(depth), AutoencoderConfig(), DiffusionConfig()
    latent = autoencoder.latent_channels
    ae = DepthBandAutoencoder(levels, latent, autoencoder.encoder_channels, autoencoder.decoder_channels,
                              depth=np.asarray(depth), mean=np.asarray(mean), std=np.asarray(std))
    seasonal = SeasonalBackground(0, levels, len(latitude), len(longitude))
    seasonal.latitude.copy_(torch.tensor(np.asarray(latitude, dtype=np.float64)))
    seasonal.longitude.copy_(torch.tensor(np.asarray(longitude, dtype=np.float64)))
    seasonal.field.copy_(torch.tensor(np.asarray(background, dtype=np.float32))[None])
    departures = DepartureAnalysis.from_covariances([Covariance("matern32", 300.0, 1.0, 0.01)] * levels)
    analysis = Analysis(seasonal, departures)
    analysis.depth.copy_(torch.tensor(np.asarray(depth, dtype=np.float64)))
    denoiser = ConditionalUNet(latent, LatentDiffusion.condition_channels(latent), dim=diffusion.dim,
                               mults=diffusion.mults, attention=diffusion.attention, context=diffusion.context)
    schedule = NoiseSchedule(diffusion.schedule, diffusion.diffusion_steps, diffusion.target)
    statistics = {"latent_mean": np.zeros(latent), "latent_std": np.ones(latent), "residual_std": np.ones(latent),
                  "surface_departure_std": [0.5]}
    return LatentDiffusion(ae, denoiser, schedule, analysis, statistics)
