"""Overlapping tiles over a (possibly global) grid, blended with a smooth window.

A network trained on patches is applied to a domain of any size by cutting it into overlapping tiles,
running all tiles as one batch, and blending the outputs with weights that fall smoothly to the tile
edges, so no seam shows. On a global grid tiles wrap around in longitude.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


def _starts(size: int, tile: int, overlap: int, periodic: bool) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    if periodic:
        return [k * stride for k in range(-(-size // stride))]
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """1 in the middle, falling as a raised cosine to near 0 over ``overlap`` cells at both ends."""
    position = torch.arange(length, dtype=torch.float64) + 0.5
    distance = torch.minimum(position, length - position)
    if overlap <= 0:
        return torch.ones(length, dtype=torch.float64)
    ramp = 0.5 - 0.5 * torch.cos(torch.pi * torch.clamp(distance / overlap, max=1.0))
    return ramp.clamp(min=1e-3)


@dataclass(frozen=True)
class Tiling:
    """Tiles of ``tile`` cells overlapping by ``overlap`` over a ``height`` x ``width`` grid.

    Parameters
    ----------
    height, width
        Grid size.
    tile
        Tile size (cells); a grid smaller than the tile is one tile of the grid's size.
    overlap
        Cells shared by neighbouring tiles (blended).
    periodic
        True when the grid wraps around in longitude (the last axis).
    """

    height: int
    width: int
    tile: int
    overlap: int
    periodic: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be >= 0 and smaller than the tile ({self.tile}), got {self.overlap}")

    @property
    def rows(self) -> list[torch.Tensor]:
        """Row indices of each tile row."""
        size = min(self.tile, self.height)
        return [torch.arange(start, start + size) for start in _starts(self.height, self.tile, self.overlap, False)]

    @property
    def columns(self) -> list[torch.Tensor]:
        """Column indices of each tile column (wrapping on a periodic grid)."""
        periodic = self.periodic and self.width > self.tile
        size = min(self.tile, self.width)
        starts = _starts(self.width, self.tile, self.overlap, periodic)
        return [(torch.arange(start, start + size) % self.width) for start in starts]

    def tiles(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(rows, columns) index pairs of every tile."""
        return [(r, c) for r in self.rows for c in self.columns]

    def cut(self, field: torch.Tensor) -> torch.Tensor:
        """Tiles of ``field`` (batch, channels, H, W) stacked as (tiles * batch, channels, tile, tile)."""
        return torch.cat([field[..., r, :][..., c] for r, c in self.tiles()], dim=0)

    def blend(self, tiles: torch.Tensor, batch: int) -> torch.Tensor:
        """Blend outputs of :meth:`cut` tiles back to (batch, channels, H, W) with the smooth window."""
        pieces = tiles.reshape(-1, batch, *tiles.shape[1:])
        out = torch.zeros(batch, tiles.shape[1], self.height, self.width, dtype=tiles.dtype, device=tiles.device)
        weight = torch.zeros(self.height, self.width, dtype=torch.float64)
        for piece, (r, c) in zip(pieces, self.tiles()):
            window = _ramp(len(r), self.overlap if len(r) < self.height else 0)[:, None] * \
                _ramp(len(c), self.overlap if len(c) < self.width else 0)[None, :]
            flat = (r[:, None] * self.width + c[None, :]).reshape(-1).to(tiles.device)
            out.view(batch, tiles.shape[1], -1).index_add_(2, flat, (piece * window.to(piece)).reshape(
                batch, tiles.shape[1], -1))
            weight.view(-1).index_add_(0, flat.cpu(), window.reshape(-1))
        return out / weight.to(out)


def tiled(
    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tiling: Tiling,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wrap ``function(field_tiles, tile_index) -> output_tiles`` into a whole-grid function.

    The returned callable takes ``(field, t)`` with ``field`` (batch, channels, H, W) and ``t`` one level
    per batch item, runs ``function`` on all tiles at once (tile-major batch, ``t`` repeated per tile)
    and blends the result.
    """

    def run(field: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        count = len(tiling.tiles())
        return tiling.blend(function(tiling.cut(field), t.repeat(count)), field.shape[0])

    return run


def tile_centres(tiling: Tiling, latitude: np.ndarray, longitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of each tile's centre cell, in :meth:`Tiling.tiles` order."""
    lats, lons = [], []
    for r, c in tiling.tiles():
        lats.append(latitude[int(r[len(r) // 2])])
        lons.append(longitude[int(c[len(c) // 2])])
    return np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64)
