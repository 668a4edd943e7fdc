"""A dense first guess of the latent from sparse observed columns: Gaussian normalised convolution.

Sparse profiles cover a few per cent of the columns; a network that must carry their information across
tens of cells learns slowly. The first guess spreads each observed latent over its neighbourhood,
weighted by distance (``sum(w * z) / sum(w)`` with Gaussian ``w``, at one or more length scales), and
reports the summed weight beside it, so the denoiser sees where the guess is well supported. The
largest scale also serves as the base that an ``x0`` denoiser corrects (see
:class:`~xdepthrecon.diffusion.latent.LatentDiffusion`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Summed weight below which a guess counts as unsupported (set to 0).
_MIN_WEIGHT = 1e-3


def _kernel(sigma: float, size: int, device: torch.device) -> torch.Tensor:
    radius = min(int(3 * sigma + 0.5), size - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    return torch.exp(-0.5 * (offsets / sigma) ** 2)


def _blur(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian sum (not mean) of ``field`` (batch, channels, H, W), zero outside the domain."""
    channels = field.shape[1]
    rows = _kernel(sigma, field.shape[-2], field.device)
    columns = _kernel(sigma, field.shape[-1], field.device)
    field = F.conv2d(field, rows.view(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous(),
                     padding=(len(rows) // 2, 0), groups=channels)
    return F.conv2d(field, columns.view(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous(),
                    padding=(0, len(columns) // 2), groups=channels)


def first_guess(z_x: torch.Tensor, observed: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """Distance-weighted averages of the observed latents and their support, at each scale.

    Parameters
    ----------
    z_x
        Latents of the observed columns (batch, channels, H, W); values where not observed are ignored.
    observed
        Observed columns (batch, 1, H, W), boolean or 0/1.
    scales
        Gaussian standard deviations in grid cells, smallest first.

    Returns
    -------
    torch.Tensor
        ``(batch, len(scales) * (channels + 1), H, W)``: for each scale the averaged latent (0 where
        unsupported) followed by the log of its summed weight (``log(1 + sum w)``).
    """
    weight = observed.to(z_x.dtype)
    masked = torch.where(observed.bool(), z_x, torch.zeros_like(z_x))
    parts = []
    for sigma in scales:
        support = _blur(weight, sigma)
        average = _blur(masked * weight, sigma) / support.clamp(min=_MIN_WEIGHT)
        parts += [torch.where(support > _MIN_WEIGHT, average, torch.zeros_like(average)), torch.log1p(support)]
    return torch.cat(parts, dim=1)
