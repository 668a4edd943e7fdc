"""The denoiser backbone: a ConvNeXt U-Net with time embedding and FiLM conditioning.

Each block is a ConvNeXt block (Liu et al. 2022): a depthwise 7x7 convolution mixes space, then a pointwise MLP
(normalisation, 1x1 expansion by 4, GELU, 1x1 projection) mixes channels, with a residual. Pointwise expansions cost
a ninth of 3x3 ones, which is most of the denoiser's speed on a CPU. The embedding of the noise level (sinusoidal,
then an MLP) and of where and when the patch is (its centre on the unit sphere, the day of year as sin/cos)
modulates every block through FiLM: a per-channel scale and shift. Linear attention (Katharopoulos et al. 2020) at
the coarsest level is optional. The network sees the noisy latent concatenated with the condition channels and
returns as many channels as the latent has. Heights and widths that are not multiples of the total downsampling are
padded (replicate) and the output cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xdepthrecon._precision import convolution_layout

#: Size of the where-and-when vector: (x, y, z) on the unit sphere, sin and cos of the day of year.
CONTEXT_FEATURES = 5


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of (integer or real) noise levels ``t``: (batch, dim)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def context_features(latitude: torch.Tensor, longitude: torch.Tensor, day_of_year: torch.Tensor) -> torch.Tensor:
    """Where and when as (batch, 5): patch centre on the unit sphere, day of year as sin/cos (0 if unknown)."""
    lat = torch.deg2rad(latitude.float())
    lon = torch.deg2rad(longitude.float())
    angle = 2 * math.pi * (day_of_year.float() - 1) / 365.25
    known = torch.isfinite(angle)
    angle = torch.where(known, angle, torch.zeros_like(angle))
    season = torch.stack([angle.sin(), angle.cos()], dim=1) * known[:, None]
    return torch.cat([torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], dim=1), season], dim=1)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt-style residual block modulated by an embedding through FiLM."""

    def __init__(self, dim_in: int, dim_out: int, embedding_dim: int, expansion: int = 4) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(dim_in, dim_in, kernel_size=7, padding=3, groups=dim_in)
        self.film = nn.Linear(embedding_dim, 2 * dim_in)
        self.net = nn.Sequential(
            nn.GroupNorm(1, dim_in),
            nn.Conv2d(dim_in, dim_out * expansion, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(dim_out * expansion, dim_out, kernel_size=1),
        )
        self.skip = nn.Conv2d(dim_in, dim_out, kernel_size=1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.depthwise(x) * (1 + scale) + shift
        return self.net(h) + self.skip(x)


class LinearAttention(nn.Module):
    """Linear-cost self-attention over all pixels, with a residual connection."""

    def __init__(self, dim: int, heads: int = 4, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = heads
        self.scale = head_dim**-0.5
        hidden = heads * head_dim
        self.norm = nn.GroupNorm(1, dim)
        self.to_qkv = nn.Conv2d(dim, hidden * 3, kernel_size=1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        q, k, v = (t.reshape(batch, self.heads, -1, height * width) for t in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(batch, -1, height, width)
        return x + self.to_out(out)


class ConditionalUNet(nn.Module):
    """ConvNeXt U-Net denoiser conditioned on condition channels, noise level, position and season.

    Parameters
    ----------
    channels
        Channels of the sample being denoised (the latent channels).
    condition_channels
        Channels of the condition stacked beside the sample (SST and other surface fields, the latent
        of the gridded observations, the observation mask).
    dim
        Width of the first level.
    mults
        Width multiplier of each level; the grid is halved between levels.
    attention
        Linear attention at the coarsest level.
    context
        FiLM conditioning on patch position and day of year (else on the noise level only).

    Examples
    --------
    >>> net = ConditionalUNet(channels=4, condition_channels=6, dim=8, mults=(1, 2))
    >>> x = torch.zeros(2, 4, 20, 20)
    >>> net(x, torch.tensor([3, 500]), torch.zeros(2, 6, 20, 20)).shape
    torch.Size([2, 4, 20, 20])
    """

    def __init__(
        self,
        channels: int,
        condition_channels: int,
        dim: int = 32,
        mults: Sequence[int] = (1, 2, 4),
        attention: bool = True,
        context: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.condition_channels = condition_channels
        self.dim = dim
        self.mults = tuple(int(m) for m in mults)
        self.attention = attention
        self.context = context
        embedding_dim = 4 * dim
        self.time_mlp = nn.Sequential(nn.Linear(dim, embedding_dim), nn.GELU(), nn.Linear(embedding_dim, embedding_dim))
        self.context_mlp = (nn.Sequential(nn.Linear(CONTEXT_FEATURES, embedding_dim), nn.GELU(),
                                          nn.Linear(embedding_dim, embedding_dim)) if context else None)
        self.stem = nn.Conv2d(channels + condition_channels, dim, kernel_size=7, padding=3)
        widths = [dim * m for m in self.mults]
        self.down = nn.ModuleList()
        previous = dim
        for level, width in enumerate(widths):
            last = level == len(widths) - 1
            self.down.append(nn.ModuleList([
                ConvNeXtBlock(previous, width, embedding_dim),
                ConvNeXtBlock(width, width, embedding_dim),
                nn.Identity() if last else nn.Conv2d(width, width, kernel_size=4, stride=2, padding=1),
            ]))
            previous = width
        self.middle = nn.ModuleList([
            ConvNeXtBlock(previous, previous, embedding_dim),
            LinearAttention(previous) if attention else nn.Identity(),
            ConvNeXtBlock(previous, previous, embedding_dim),
        ])
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            first = level == 0
            self.up.append(nn.ModuleList([
                ConvNeXtBlock(previous + width, width, embedding_dim),
                ConvNeXtBlock(width, width, embedding_dim),
                nn.Identity() if first else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                          nn.Conv2d(width, widths[level - 1], 3, padding=1)),
            ]))
            previous = width if first else widths[level - 1]
        self.head = nn.Sequential(nn.GroupNorm(1, dim), nn.GELU(), nn.Conv2d(dim, channels, kernel_size=1))
        # an untrained network outputs 0: an x0 model starts from its base (the encoded temperature guess or
        # the first guess), not from noise
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    @property
    def config(self) -> dict[str, object]:
        """Constructor arguments as a JSON-serialisable dict."""
        return {"channels": self.channels, "condition_channels": self.condition_channels, "dim": self.dim,
                "mults": list(self.mults), "attention": self.attention, "context": self.context}

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        condition: torch.Tensor,
        *,
        latitude: torch.Tensor | None = None,
        longitude: torch.Tensor | None = None,
        day_of_year: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoise ``x`` (batch, channels, H, W) at noise levels ``t`` given ``condition`` and context."""
        if condition.shape[1] != self.condition_channels or x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} sample and {self.condition_channels} condition channels, "
                             f"got {x.shape[1]} and {condition.shape[1]}")
        embedding = self.time_mlp(sinusoidal_embedding(t, self.dim))
        if self.context_mlp is not None:
            batch = x.shape[0]
            missing = torch.full((batch,), float("nan"), device=x.device)
            features = context_features(
                latitude if latitude is not None else torch.zeros(batch, device=x.device),
                longitude if longitude is not None else torch.zeros(batch, device=x.device),
                day_of_year if day_of_year is not None else missing,
            )
            embedding = embedding + self.context_mlp(features.to(embedding.dtype))
        height, width = x.shape[-2:]
        factor = 2 ** (len(self.mults) - 1)
        pad = (0, (-width) % factor, 0, (-height) % factor)
        h = F.pad(torch.cat([x, condition.to(x.dtype)], dim=1), pad, mode="replicate") if any(pad) else \
            torch.cat([x, condition.to(x.dtype)], dim=1)
        h = self.stem(convolution_layout(h))
        skips = []
        for block, block2, downsample in self.down:
            h = block2(block(h, embedding), embedding)
            skips.append(h)
            h = downsample(h)
        first, attention, second = self.middle
        h = second(attention(first(h, embedding)), embedding)
        for block, block2, upsample in self.up:
            h = block2(block(torch.cat([h, skips.pop()], dim=1), embedding), embedding)
            h = upsample(h)
        return self.head(h)[..., :height, :width].contiguous()
