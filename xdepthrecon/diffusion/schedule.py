"""Noise schedules and the parameterisations of what a denoiser predicts.

A schedule of ``steps`` discrete noise levels is given by the cumulative signal fraction
``alpha_bar[t]`` (t = 0 .. steps-1, decreasing): ``x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps``.
A denoiser predicts ``x0``, ``eps`` or ``v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0``; the
conversions between them live here so that samplers and losses share one definition. All arithmetic
is float32 or float64, never reduced precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

KINDS = ("cosine", "linear", "sigmoid")
TARGETS = ("x0", "eps", "v")
#: How training draws noise levels: all equally, or with probability rising linearly to the noisiest.
LEVEL_DRAWS = ("uniform", "noisy")


def _cosine_alpha_bar(steps: int, offset: float = 0.008) -> torch.Tensor:
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


def _betas_alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    return torch.cumprod(1 - betas, dim=0)


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete diffusion noise schedule.

    Parameters
    ----------
    kind
        ``"cosine"`` (Nichol & Dhariwal 2021), ``"linear"`` (betas 1e-4 .. 0.02, Ho et al. 2020) or
        ``"sigmoid"`` (betas along a sigmoid between the same bounds).
    steps
        Number of noise levels (training steps).
    target
        What the denoiser predicts: ``"x0"``, ``"eps"`` or ``"v"``.

    Examples
    --------
    >>> schedule = NoiseSchedule("cosine", steps=1000)
    >>> float(schedule.alpha_bar[0]) > 0.99 and float(schedule.alpha_bar[-1]) < 1e-3
    True
    """

    kind: str = "cosine"
    steps: int = 1000
    target: str = "x0"
    alpha_bar: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown schedule kind {self.kind!r}; choose one of {KINDS}")
        if self.target not in TARGETS:
            raise ValueError(f"unknown prediction target {self.target!r}; choose one of {TARGETS}")
        if self.steps < 2:
            raise ValueError(f"a schedule needs at least 2 steps, got {self.steps}")
        if self.kind == "cosine":
            alpha_bar = _cosine_alpha_bar(self.steps)
        elif self.kind == "linear":
            alpha_bar = _betas_alpha_bar(torch.linspace(1e-4, 0.02, self.steps, dtype=torch.float64))
        else:
            betas = torch.sigmoid(torch.linspace(-6, 6, self.steps, dtype=torch.float64)) * (0.02 - 1e-4) + 1e-4
            alpha_bar = _betas_alpha_bar(betas)
        object.__setattr__(self, "alpha_bar", alpha_bar)

    @property
    def config(self) -> dict[str, object]:
        """Constructor arguments as a JSON-serialisable dict."""
        return {"kind": self.kind, "steps": self.steps, "target": self.target}

    def coefficients(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sqrt(alpha_bar[t]), sqrt(1 - alpha_bar[t]))`` shaped to broadcast against ``like`` (batch first)."""
        alpha_bar = self.alpha_bar.to(like.device)[t.long().to(like.device)]
        shape = (-1,) + (1,) * (like.ndim - 1)
        return alpha_bar.sqrt().reshape(shape).to(like.dtype), (1 - alpha_bar).sqrt().reshape(shape).to(like.dtype)

    def draw_levels(self, count: int, generator: torch.Generator | None = None,
                    draw: str = "uniform") -> torch.Tensor:
        """``count`` noise levels for training: ``"uniform"`` over ``0 .. steps-1``, or ``"noisy"`` with
        probability rising linearly with the level (``p(t) ~ 2 t + 1``), which spends more of the training on
        the noisiest levels, where the denoiser must predict the conditional mean from its conditioning alone."""
        if draw == "uniform":
            return torch.randint(0, self.steps, (count,), generator=generator)
        if draw == "noisy":  # a density rising linearly on [0, steps), rounded down
            u = torch.rand((count,), generator=generator, dtype=torch.float64)
            return (self.steps * u.sqrt()).long().clamp(max=self.steps - 1)
        raise ValueError(f"unknown noise level draw {draw!r}; choose one of {LEVEL_DRAWS}")

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t`` for clean ``x0``, standard normal ``noise`` and integer levels ``t`` (one per batch item)."""
        signal, sigma = self.coefficients(t, x0)
        return signal * x0 + sigma * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the denoiser should output for ``(x0, noise, t)`` under this schedule's ``target``."""
        if self.target == "x0":
            return x0
        if self.target == "eps":
            return noise
        signal, sigma = self.coefficients(t, x0)
        return signal * noise - sigma * x0

    def predict_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Turn a denoiser ``output`` at ``(x_t, t)`` into the implied clean sample ``x0``."""
        if self.target == "x0":
            return output
        signal, sigma = self.coefficients(t, x_t)
        if self.target == "eps":
            return (x_t - sigma * output) / signal
        return signal * x_t - sigma * output

    def predict_eps(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise implied by ``x0`` at ``(x_t, t)``."""
        signal, sigma = self.coefficients(t, x_t)
        return (x_t - signal * x0) / sigma
