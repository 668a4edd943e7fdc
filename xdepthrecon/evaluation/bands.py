"""Depth bands: which levels a band ``(top, bottom)`` holds, and the default bands for a set of levels.

Every score pooled by depth band (:func:`~xdepthrecon.evaluation.osse.band_scores`,
:func:`~xdepthrecon.evaluation.ceiling.compression_ceiling`, the benchmarks) uses one rule: a band holds the levels
``top <= depth < bottom``, and the last band of a list also its bottom level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["default_bands", "in_band"]

#: Band edges (m) of :func:`default_bands`: the upper ocean, the thermocline, intermediate and deep water.
EDGES = (0.0, 100.0, 300.0, 1000.0, 2000.0)


def in_band(depth: Sequence[float] | np.ndarray, band: tuple[float, float], last: bool = False) -> np.ndarray:
    """Which of the levels ``depth`` (m) the band ``(top, bottom)`` holds: ``top <= depth < bottom``, or
    ``top <= depth <= bottom`` for the ``last`` band of a list."""
    levels = np.asarray(depth, dtype=float)
    top, bottom = band
    return (levels >= top) & ((levels <= bottom) if last else (levels < bottom))


def default_bands(depth: Sequence[float] | np.ndarray) -> list[tuple[float, float]]:
    """Depth bands (m) that cover ``depth``: 0-100, 100-300, 300-1000, 1000-2000 and 2000 to the deepest level,
    down to the first edge at or below the deepest level (the last band includes its bottom), keeping those that
    hold a level."""
    levels = np.asarray(depth, dtype=float)
    deepest = float(levels.max())
    edges = [edge for edge in EDGES if edge < deepest]
    edges.append(next((edge for edge in EDGES if edge >= deepest), deepest))
    bands = list(zip(edges[:-1], edges[1:]))
    return [band for band in bands if in_band(levels, band, band == bands[-1]).any()]
