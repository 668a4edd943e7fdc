"""Run a local (convolutional) column function over a (time, channel, latitude, longitude) array.

The function sees spatial tiles extended by a halo wide enough for its receptive field, so the
result does not depend on how the array is chunked or tiled: no seams at chunk or tile edges. On a
global grid the longitude axis wraps, so there is no seam at the dateline either. Tiles of one shape
are stacked into batches before they reach the function. :func:`interior_of` cuts a batch of fields read
with a halo (as training patches are) down to their interiors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import dask
import dask.array as dsa
from dask.array.overlap import ensure_minimum_chunksize
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
import numpy as np
import torch

#: A batch function: (batch, channels, height, width) float32 -> (batch, out_channels, height, width).
BatchFunction = Callable[[np.ndarray], np.ndarray]


def _spans(size: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """(start, stop) of each tile's interior and of its halo-extended read window, clipped to the array."""
    spans = []
    for start in range(0, size, tile):
        stop = min(size, start + tile)
        spans.append((start, stop, max(0, start - halo), min(size, stop + halo)))
    return spans


def run_tiled(
    block: np.ndarray, function: BatchFunction, out_channels: int, halo: int, tile: int, batch_size: int
) -> np.ndarray:
    """Apply ``function`` to ``block`` (time, channel, y, x) by halo-extended tiles, batched by shape.

    Where a tile touches the edge of ``block`` it gets no halo on that side: the function then sees
    the edge as the edge of the domain, exactly as it would on the whole array.
    """
    times, _, height, width = block.shape
    out = np.empty((times, out_channels, height, width), dtype=np.float32)
    groups: dict[tuple[int, int], list[tuple[int, tuple[int, int, int, int], tuple[int, int, int, int]]]]
    groups = defaultdict(list)
    for y_span in _spans(height, tile, halo):
        for x_span in _spans(width, tile, halo):
            shape = (y_span[3] - y_span[2], x_span[3] - x_span[2])
            groups[shape].extend((t, y_span, x_span) for t in range(times))
    for items in groups.values():
        for first in range(0, len(items), batch_size):
            chunk = items[first:first + batch_size]
            batch = np.stack([block[t, :, ys[2]:ys[3], xs[2]:xs[3]] for t, ys, xs in chunk])
            batch = batch.astype(np.float32, copy=False)  # no second copy of a batch that is float32 already
            result = function(batch)
            for (t, ys, xs), values in zip(chunk, result):
                rows, columns = slice(ys[0] - ys[2], ys[1] - ys[2]), slice(xs[0] - xs[2], xs[1] - xs[2])
                out[t, :, ys[0]:ys[1], xs[0]:xs[1]] = values[:, rows, columns]
    return out


def _wrap(block: np.ndarray, halo: int) -> np.ndarray:
    return np.concatenate([block[..., -halo:], block, block[..., :halo]], axis=-1)


def _edge(halo: int) -> dict[int, slice]:
    """Rows (or columns) of a block that a neighbour reads as halo, by where the reader sits: -1 before, +1 after."""
    return {-1: slice(0, halo), 0: slice(None), 1: slice(-halo, None)}


def _borders(block: np.ndarray, halo: int) -> dict[tuple[int, int], np.ndarray]:
    """Copies of the strips of ``block`` that its neighbours read as halo, keyed by the reader's offset (dy, dx).

    Copies, not views: a view of a few columns would keep the whole block alive until every neighbour has run.
    """
    edge = _edge(halo)
    return {(dy, dx): block[..., edge[dy], edge[dx]].copy() for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx}


def _join(pieces: list[np.ndarray], axis: int) -> np.ndarray:
    """Concatenate, without copying a lone piece."""
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=axis)


def _run_with_halo(block: np.ndarray, neighbours: list[list[dict | None]], function: BatchFunction,
                   out_channels: int, halo: int, tile: int, batch_size: int) -> np.ndarray:
    """One block extended by its neighbours' strips (``neighbours[1 + dy][1 + dx]``), run and trimmed to itself."""
    def piece(dy: int, dx: int) -> np.ndarray | None:
        source = neighbours[1 + dy][1 + dx]
        return block if dy == dx == 0 else None if source is None else source[(-dy, -dx)]

    rows = [[piece(dy, dx) for dx in (-1, 0, 1)] for dy in (-1, 0, 1)]
    rows = [_join([p for p in row if p is not None], axis=3) for row in rows if row[1] is not None]
    extended = _join(rows, axis=2)
    del rows
    result = run_tiled(extended, function, out_channels, halo, tile, batch_size)
    top = 0 if neighbours[0][1] is None else neighbours[0][1][(1, 0)].shape[2]
    left = 0 if neighbours[1][0] is None else neighbours[1][0][(0, 1)].shape[3]
    return result[..., top:top + block.shape[2], left:left + block.shape[3]]


def map_columns(
    array: np.ndarray | dsa.Array,
    function: BatchFunction,
    out_channels: int,
    halo: int,
    periodic: bool,
    tile: int = 256,
    batch_size: int = 8,
) -> np.ndarray | dsa.Array:
    """Apply a local batch function over (time, channel, latitude, longitude), lazily on dask input.

    Parameters
    ----------
    array
        Input values; a dask array is processed chunk by chunk (channels are gathered into one chunk).
    function
        Maps a float32 batch (n, channels, h, w) to (n, out_channels, h, w); each output pixel may
        depend on inputs at most ``halo`` pixels away. On dask input it becomes one key of the graph
        (tokenized by ``__dask_tokenize__`` where it has one), so it must be picklable for a cluster.
    out_channels
        Number of output channels.
    halo
        Receptive-field radius of ``function`` in pixels.
    periodic
        True for a global grid: longitude wraps around.
    tile, batch_size
        Interior tile size in pixels and number of tiles per call of ``function``.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        Float32 result with ``out_channels`` channels, of the same kind as ``array``.
    """
    if not isinstance(array, dsa.Array):
        block = _wrap(array, halo) if periodic and halo else array
        out = run_tiled(block, function, out_channels, halo, tile, batch_size)
        return out[..., halo:-halo] if periodic and halo else out
    array = array.rechunk({1: -1})
    if halo:
        array = array.rechunk({axis: ensure_minimum_chunksize(halo, array.chunks[axis]) for axis in (2, 3)
                               if array.shape[axis] >= halo})
    shipped = dask.delayed(function, pure=True)  # one graph key: sent to each worker once, not in every task
    token = tokenize(array.name, shipped.key, out_channels, halo, periodic, tile, batch_size)
    borders, name = f"halo-borders-{token}", f"map-columns-{token}"
    counts = array.numblocks
    tasks = {(borders, *index): (_borders, (array.name, *index), halo) for index in np.ndindex(*counts) if halo}

    def neighbour(t: int, c: int, y: int, x: int) -> tuple | None:
        if periodic:
            x %= counts[3]
        return (borders, t, c, y, x) if halo and 0 <= y < counts[2] and 0 <= x < counts[3] else None

    tasks.update({
        (name, t, c, y, x): (_run_with_halo, (array.name, t, c, y, x),
                             [[neighbour(t, c, y + dy, x + dx) for dx in (-1, 0, 1)] for dy in (-1, 0, 1)],
                             shipped.key, out_channels, halo, tile, batch_size)
        for t, c, y, x in np.ndindex(*counts)
    })
    graph = HighLevelGraph.from_collections(name, tasks, dependencies=[array, shipped])
    chunks = (array.chunks[0], (out_channels,), array.chunks[2], array.chunks[3])
    return dsa.Array(graph, name, chunks, meta=np.empty((0, 0, 0, 0), dtype=np.float32))


def interior_of(values: torch.Tensor, spans: torch.Tensor | None) -> torch.Tensor:
    """``values`` (batch, ..., H, W) cut to each item's interior, ``spans`` (batch, 4) holding its first row,
    first column, rows and columns (the same size for every item): (batch, ..., rows, columns); None: all of
    ``values``."""
    if spans is None:
        return values
    spans = spans.tolist()
    rows, columns = spans[0][2:]
    if all(span[:2] == spans[0][:2] for span in spans):
        top, left = spans[0][:2]
        return values[..., top:top + rows, left:left + columns]
    return torch.stack([item[..., top:top + rows, left:left + columns] for item, (top, left, _, _) in zip(values, spans)])
