"""DDPM and DDIM sampling with any denoiser callable.

A denoiser is ``denoiser(x_t, t) -> output`` where ``t`` holds one integer noise level per batch item
and ``output`` is what the schedule's ``target`` names (``x0``, ``eps`` or ``v``). DDIM (Song et al.
2021) with ``eta`` between 0 (deterministic) and 1; DDPM (Ho et al. 2020) is ancestral sampling over
every noise level, which is DDIM with ``eta = 1`` on all steps. The arithmetic runs in float32 (or the
dtype of ``x_T``); reduced precision belongs inside the network only.

An optional projection, any ``project(x0, t) -> x0`` (e.g.
:class:`~xdepthrecon.diffusion.guidance.Replacement`), corrects each step's clean estimate, to keep the
sample consistent with observations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from xdepthrecon.diffusion.schedule import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Projection = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SAMPLERS = ("ddim", "ddpm")


@dataclass(frozen=True)
class SamplingOptions:
    """How :func:`xdepthrecon.reconstruct` samples an ensemble.

    Parameters
    ----------
    members
        Ensemble size.
    steps, sampler, eta
        Reverse diffusion: DDIM with ``steps`` steps and stochasticity ``eta``, or DDPM (every noise level).
    replace
        Keep the sample consistent with the observed values
        (:class:`~xdepthrecon.diffusion.guidance.Replacement`), and the members carry them exactly.
    tile, overlap
        Tile size and overlap (grid cells) of the denoiser passes.
    batch_size
        Tiles x members per network call.
    keep_members
        Also return the members.
    fast
        Run the denoiser in bfloat16 autocast; None (default): where that is faster, on GPUs and on CPUs with
        AMX or AVX-512 BF16, else fp32. The sampling arithmetic stays fp32.
    """

    members: int = 8
    steps: int = 25
    sampler: str = "ddim"
    eta: float = 0.0
    replace: bool = False
    tile: int = 64
    overlap: int = 16
    batch_size: int = 16
    keep_members: bool = False
    fast: bool | None = None

    def __post_init__(self) -> None:
        if self.members < 1 or self.steps < 1:
            raise ValueError(f"members and steps must be at least 1, got {self.members} and {self.steps}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")


def timesteps(schedule: NoiseSchedule, steps: int) -> torch.Tensor:
    """``steps`` noise levels from the noisiest down to 0, evenly spaced over the schedule."""
    if not 1 <= steps <= schedule.steps:
        raise ValueError(f"steps must be between 1 and the schedule's {schedule.steps}, got {steps}")
    return torch.linspace(schedule.steps - 1, 0, steps).round().long().unique_consecutive()


def sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    *,
    steps: int = 50,
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    project: Projection | None = None,
    x_T: torch.Tensor | None = None,
    return_first: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Draw samples by reverse diffusion.

    Parameters
    ----------
    denoiser
        ``denoiser(x_t, t) -> output`` (see the module docstring).
    shape
        Shape of the samples, batch first.
    schedule
        The noise schedule the denoiser was trained with.
    steps
        Number of reverse steps for DDIM (DDPM always uses every noise level).
    sampler
        ``"ddim"`` or ``"ddpm"``.
    eta
        DDIM stochasticity: 0 deterministic, 1 as much noise as DDPM.
    generator
        Source of randomness; the same generator state gives the same samples.
    device
        Where the samples live.
    project
        Optional correction of each clean estimate, ``project(x0, t) -> x0``.
    x_T
        Starting noise; default drawn from ``generator``.
    return_first
        Also return the first step's clean estimate (projected, if ``project``): from the noisiest level, where
        the sample holds almost nothing of ``x0``, it is the denoiser's estimate of the mean of ``x0`` given its
        conditioning, one per sample.

    Returns
    -------
    torch.Tensor
        The samples, shaped ``shape``; with ``return_first``, ``(samples, first estimates)``.
    """
    if sampler == "ddpm":
        levels, eta = timesteps(schedule, schedule.steps), 1.0
    elif sampler == "ddim":
        levels = timesteps(schedule, steps)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose 'ddim' or 'ddpm'")
    x = _noise(shape, generator, device, torch.float32) if x_T is None else x_T.to(device)
    alpha_bar = schedule.alpha_bar.to(device=device, dtype=torch.float64)
    for index, level in enumerate(levels):
        t = torch.full((shape[0],), int(level), device=device, dtype=torch.long)
        x0 = schedule.predict_x0(denoiser(x, t).to(x.dtype), x, t)
        if project is not None:
            x0 = project(x0, t)
        if index == 0:
            first = x0
        if index == len(levels) - 1:
            break
        eps = schedule.predict_eps(x0, x, t)
        now = alpha_bar[level]
        previous = alpha_bar[levels[index + 1]]
        sigma = eta * torch.sqrt((1 - previous) / (1 - now) * (1 - now / previous))
        direction = torch.sqrt((1 - previous - sigma**2).clamp(min=0.0))
        x = previous.sqrt().to(x.dtype) * x0 + direction.to(x.dtype) * eps
        if sigma > 0:
            noise = _noise(shape, generator, device, x.dtype)
            x = x + sigma.to(x.dtype) * noise
    return (x0, first) if return_first else x0


def _noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None,
           dtype: torch.dtype) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (a CPU generator gives the same numbers whatever
    ``device`` the sampler runs on), then moved to ``device``."""
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source, dtype=dtype).to(device)
