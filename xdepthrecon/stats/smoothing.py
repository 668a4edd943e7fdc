"""A dense first guess of the latent from sparse observed columns: successive Gaussian corrections.

Sparse profiles cover a few per cent of the columns; a network that must carry their information across
tens of cells learns slowly. The first guess spreads the observed latents over their neighbourhood by
successive corrections (Barnes 1964): a first pass at the largest length scale takes the distance-weighted
average of the observations (``sum(w * z) / sum(w)`` with Gaussian ``w``); each following, smaller-scale
pass adds the distance-weighted average of what the passes so far leave unexplained at the observed
columns. Large scales fill the gaps between profiles, small ones keep the detail near them. The summed
weight of each pass travels beside it, so the denoiser sees where the guess is well supported. The final
guess also serves as the base that an ``x0`` denoiser corrects (see
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


def gaussian_sum(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian-weighted sum (not mean) of ``field`` (batch, channels, H, W) over the neighbourhood
    of each cell, ``sigma`` in grid cells, zero outside the domain."""
    channels = field.shape[1]
    rows = _kernel(sigma, field.shape[-2], field.device)
    columns = _kernel(sigma, field.shape[-1], field.device)
    field = F.conv2d(field, rows.view(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous(),
                     padding=(len(rows) // 2, 0), groups=channels)
    return F.conv2d(field, columns.view(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous(),
                    padding=(0, len(columns) // 2), groups=channels)


def observation_support(observed: torch.Tensor, scale: float) -> torch.Tensor:
    """``log(1 + sum of Gaussian weights)`` at ``scale`` cells of the observed columns (batch, C, H, W):
    0 far from any observation, large in a dense cluster."""
    return torch.log1p(gaussian_sum(observed.float(), scale))


def first_guess(z_x: torch.Tensor, observed: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """Successive-correction guesses of the observed latents and their support, one per pass.

    Parameters
    ----------
    z_x
        Latents of the observed columns (batch, channels, H, W); values where not observed are ignored.
    observed
        Observed columns (batch, 1, H, W), boolean or 0/1.
    scales
        Gaussian standard deviations in grid cells; the passes run from the largest to the smallest.

    Returns
    -------
    torch.Tensor
        ``(batch, len(scales) * (channels + 1), H, W)``: for each pass, largest scale first, the guess so
        far (0 where no pass has reached) followed by the log of that pass's summed weight
        (``log(1 + sum w)``). The last pass's guess is the full first guess.
    """
    observed = observed.bool()
    weight = observed.to(z_x.dtype)
    guess = torch.zeros_like(z_x)
    parts = []
    for sigma in sorted(scales, reverse=True):
        residual = torch.where(observed, z_x - guess, torch.zeros_like(z_x))
        support = gaussian_sum(weight, sigma)
        correction = gaussian_sum(residual * weight, sigma) / support.clamp(min=_MIN_WEIGHT)
        guess = guess + torch.where(support > _MIN_WEIGHT, correction, torch.zeros_like(correction))
        parts += [guess, torch.log1p(support)]
    return torch.cat(parts, dim=1)
