"""Horizontal interpolation on the sphere: fields ``(level, latitude, longitude)`` filled from their known cells.

Each level is interpolated from its observed cells to the wanted ones:

- ``"nearest"``: the value of the nearest observed cell, by great-circle distance;
- ``"inverse_distance"``: the mean of the ``neighbours`` nearest observed cells weighted by
  1 / distance^``power`` (great-circle distances; an observed cell keeps its own value);
- ``"linear"``: piecewise-linear on the Delaunay triangulation of the observed cells in
  longitude/latitude, with the observations repeated 360 degrees east and west on a global grid so
  that longitude wraps; cells outside the triangulation (e.g. polar caps beyond the outermost
  observations) take the nearest observation.

All three are exact at observed cells. :func:`fill_cells` fills holes from the ring of cells around them.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
from scipy.spatial import ConvexHull, Delaunay, QhullError, cKDTree

from xdepthrecon.stats.geometry import great_circle_km, unit_vectors

METHODS: tuple[str, ...] = ("linear", "nearest", "inverse_distance")
#: Width (cells) of the ring of known cells that held-out cells are interpolated from.
RING = 3
#: Triangles (nearest by centroid) tried for each target before searching all of them.
_CANDIDATES = 128
#: Targets searched against all triangles at a time.
_BRUTE_CHUNK = 512
#: Tolerance of the barycentric weights for a point to count as inside a triangle.
_INSIDE = 1e-9
#: Distance (km) below which an observation counts as sitting on the target cell.
_SAME_CELL_KM = 1e-6


def interpolate_horizontal(
    values: np.ndarray,
    wanted: np.ndarray,
    latitude: np.ndarray,
    longitude: np.ndarray,
    *,
    method: str = "linear",
    neighbours: int = 8,
    power: float = 2.0,
    periodic: bool = True,
) -> np.ndarray:
    """Fill the ``wanted`` cells of fields ``(level, latitude, longitude)`` from their finite values.

    Levels observed in the same cells are interpolated together (one triangulation or tree).

    Parameters
    ----------
    values
        ``(level, latitude, longitude)``; finite values are the observations.
    wanted
        Boolean, same shape: the cells to fill.
    latitude, longitude
        The grid's 1-D coordinates (degrees).
    method
        ``"linear"``, ``"nearest"`` or ``"inverse_distance"`` (see the module description).
    neighbours, power
        Number of observations and distance exponent of ``"inverse_distance"``.
    periodic
        Whether longitude wraps (a global grid).

    Returns
    -------
    numpy.ndarray
        Same shape as ``values``: interpolated at ``wanted`` cells, NaN elsewhere and at levels
        without observations.
    """
    levels, rows, cols = values.shape
    flat, wanted = values.reshape(levels, -1), wanted.reshape(levels, -1)
    known = np.isfinite(flat)
    out = np.full(flat.shape, np.nan)
    lat, lon = np.meshgrid(latitude, longitude, indexing="ij")
    vectors = unit_vectors(lat.ravel(), lon.ravel())
    points = np.stack([lon.ravel(), lat.ravel()], axis=-1)
    groups: dict[bytes, list[int]] = {}
    for level in range(levels):
        if known[level].any() and wanted[level].any():
            groups.setdefault(np.packbits(known[level]).tobytes(), []).append(level)
    for members in groups.values():
        cells = np.flatnonzero(known[members[0]])
        targets = np.flatnonzero(wanted[members].any(axis=0))
        observed = flat[np.ix_(members, cells)].T
        if method == "linear":
            filled = _linear(points[cells], observed, points[targets], periodic)
            missing = np.isnan(filled).any(axis=1)
            if missing.any():
                filled[missing] = _inverse_distance(vectors[cells], observed, vectors[targets[missing]], 1, power)
        else:
            k = 1 if method == "nearest" else neighbours
            filled = _inverse_distance(vectors[cells], observed, vectors[targets], k, power)
        block = np.full((len(members), flat.shape[1]), np.nan)
        block[:, targets] = filled.T
        out[members] = np.where(wanted[members], block, np.nan)
    return out.reshape(levels, rows, cols)


def _inverse_distance(sources: np.ndarray, values: np.ndarray, targets: np.ndarray, k: int,
                      power: float) -> np.ndarray:
    """Inverse-distance weights over the ``k`` nearest sources (k = 1: nearest); exact at the sources."""
    k = min(k, sources.shape[0])
    chord, index = cKDTree(sources).query(targets, k=k)
    chord, index = chord.reshape(len(targets), k), index.reshape(len(targets), k)
    distance = great_circle_km(chord)
    on_source = distance[:, 0] < _SAME_CELL_KM
    with np.errstate(divide="ignore"):
        weights = np.where(on_source[:, None], (np.arange(k) == 0)[None, :], distance ** -power)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return np.einsum("tk,tkl->tl", weights, values[index])


def _linear(points: np.ndarray, values: np.ndarray, targets: np.ndarray, periodic: bool) -> np.ndarray:
    """Piecewise-linear interpolation in longitude/latitude; NaN outside the triangulation.

    The triangles are scipy's Delaunay ones; locating the targets and their barycentric weights is
    done here with numpy (scipy's per-triangle LAPACK calls crawl on a busy machine).
    """
    if periodic:
        shifts = (np.array([-360.0, 0.0]), np.array([0.0, 0.0]), np.array([360.0, 0.0]))
        points = np.concatenate([points + s for s in shifts])
        values = np.concatenate([values] * 3)
    out = np.full((len(targets), values.shape[1]), np.nan)
    try:
        simplices = Delaunay(points).simplices
    except (QhullError, ValueError):
        return out
    corners = points[simplices]
    edges = corners[:, 1:] - corners[:, :1]
    determinant = edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]
    keep = np.abs(determinant) > 1e-12 * np.abs(edges).max(axis=(1, 2)) ** 2
    simplices, corners, edges, determinant = simplices[keep], corners[keep], edges[keep], determinant[keep]
    if simplices.shape[0] == 0:
        return out
    inverse = np.stack([np.stack([edges[:, 1, 1], -edges[:, 1, 0]], -1),
                        np.stack([-edges[:, 0, 1], edges[:, 0, 0]], -1)], 1) / determinant[:, None, None]

    def weights(simplex: np.ndarray, point: np.ndarray) -> np.ndarray:
        matrix, offset = inverse[simplex], point - corners[simplex, 0]
        first = matrix[..., 0, 0] * offset[..., 0] + matrix[..., 0, 1] * offset[..., 1]
        second = matrix[..., 1, 0] * offset[..., 0] + matrix[..., 1, 1] * offset[..., 1]
        return np.stack([1.0 - first - second, first, second], axis=-1)

    k = min(_CANDIDATES, simplices.shape[0])
    _, candidates = cKDTree(corners.mean(axis=1)).query(targets, k=k)
    candidates = candidates.reshape(len(targets), k)
    chosen, chosen_weights = np.full(len(targets), -1), np.zeros((len(targets), 3))
    todo = np.arange(len(targets))
    for column in range(k):  # the nearest triangles by centroid first; most targets stop at the first
        simplex = candidates[todo, column]
        found = _locate(weights(simplex, targets[todo]), simplex, todo, chosen, chosen_weights)
        todo = todo[~found]
    hull = ConvexHull(points).equations
    todo = todo[(targets[todo] @ hull[:, :2].T + hull[:, 2] <= _INSIDE * 360.0).all(axis=1)]
    for start in range(0, todo.size, _BRUTE_CHUNK):
        rest = todo[start:start + _BRUTE_CHUNK]
        every = weights(np.arange(simplices.shape[0])[None, :], targets[rest][:, None, :])
        inside = (every >= -_INSIDE).all(axis=-1)
        first = np.argmax(inside, axis=1)
        _locate(every[np.arange(rest.size), first], first, rest, chosen, chosen_weights,
                found=inside.any(axis=1))
    located = chosen >= 0
    out[located] = np.einsum("tv,tvl->tl", chosen_weights[located], values[simplices[chosen[located]]])
    return out


def _locate(barycentric: np.ndarray, simplex: np.ndarray, rows: np.ndarray, chosen: np.ndarray,
            chosen_weights: np.ndarray, found: np.ndarray | None = None) -> np.ndarray:
    """Record the triangles that hold their targets (all weights >= 0); return which did."""
    if found is None:
        found = (barycentric >= -_INSIDE).all(axis=-1)
    chosen[rows[found]] = simplex[found]
    chosen_weights[rows[found]] = barycentric[found]
    return found


def fill_cells(values: np.ndarray, wanted: np.ndarray, latitude: np.ndarray, longitude: np.ndarray, *,
               periodic: bool) -> np.ndarray:
    """Linear interpolation of ``values (level, lat, lon)`` into the ``wanted`` cells from the ring around them.

    Each wanted cell is interpolated (:func:`interpolate_horizontal`, ``"linear"``) from the known cells
    within :data:`RING` cells of any wanted one, and takes the nearest known value where that leaves it
    empty. ``latitude`` and ``longitude`` are the grid's 1-D coordinates (degrees); ``periodic`` says
    whether longitude wraps. Returns the same shape as ``values``, NaN outside ``wanted``.
    """
    pad = RING if periodic else 0
    padded = np.pad(wanted, ((0, 0), (0, 0), (pad, pad)), mode="wrap")
    near = scipy.ndimage.binary_dilation(padded, structure=np.ones((1, 2 * RING + 1, 2 * RING + 1), dtype=bool))
    ring = near[:, :, pad:near.shape[2] - pad]
    filled = interpolate_horizontal(np.where(ring, values, np.nan), wanted, latitude, longitude, method="linear",
                                    periodic=periodic)
    missing = wanted & np.isnan(filled)
    if missing.any():
        nearest = interpolate_horizontal(values, missing, latitude, longitude, method="nearest", periodic=periodic)
        filled = np.where(missing, nearest, filled)
    return filled
