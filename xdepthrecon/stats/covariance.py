"""Gaussian-process covariances on the sphere: fitted by composite likelihood, used for local tile-wise kriging.

The anomalies of one level are modelled as a zero-mean Gaussian process in the horizontal, independent
between fields (time steps, patches), plus white noise:

    cov(a_i, a_j) = s^2 k(d_ij / L) + n^2 [i = j],

with ``k`` a Matern-3/2, exponential or Gaussian correlation (:data:`~xdepthrecon.stats.kernels.KERNELS`) and
``d`` the chord distance through the Earth in km (within 1 % of the great-circle distance up to 3000 km; using the
chord keeps every kernel positive definite on the sphere). **Fitting** (:func:`fit_covariance`,
:func:`fit_levels`): the length scale ``L``, signal variance ``s^2`` and noise (nugget) variance ``n^2`` maximise
the Gaussian likelihood of the observed anomalies (``s^2`` in closed form given the other two; a coarse grid then
L-BFGS-B for ``L`` and ``n^2 / s^2``). The likelihood is a composite one over blocks: each field's observations,
and where a field has more than ``block`` of them, the ``block`` nearest to each of a few random centres, at most
``max_blocks`` blocks in all, so the cost is bounded whatever the number of observations. **Prediction**
(:func:`predict`) is local: the targets are cut into tiles (:func:`tile_labels`; or overlapping, blended without
steps: :func:`blended_tiles`), and each tile is predicted from the ``neighbours`` sources nearest to its centre,
one small solve per tile, batched. The posterior standard deviation is that of the signal plus the nugget
(``sqrt(s^2 - k*' K^-1 k* + n^2)``): small near observations and ``sqrt(s^2 + n^2)``, the prior's, far from them;
optionally both variances are rescaled in each tile to the anomalies of its neighbours.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
from scipy.spatial import cKDTree

from xdepthrecon.stats.geometry import EARTH_RADIUS_KM, chord_km
from xdepthrecon.stats.kernels import KERNELS, level_signals


#: Fewest observations at a level to fit its covariance; levels with fewer take the nearest fitted level's.
MIN_FIT_OBSERVATIONS = 20
#: Weight (in observations) of the fitted variance in each tile's local variance.
PRIOR_WEIGHT = 8.0
#: Bounds of the noise-to-signal variance ratio.
_RATIO_BOUNDS = (1e-6, 1e2)
#: Relative jitter on the diagonal.
_JITTER = 1e-9
#: Distance (km) that puts padding far from everything (correlation 0).
_FAR_KM = 1e12
#: Largest number of float64 values in one batch of tile solves.
_BATCH_VALUES = 4_000_000


@dataclass(frozen=True)
class Covariance:
    """A fitted covariance: ``signal_variance * kernel(d / length_scale) + noise_variance`` on the diagonal."""

    kernel: str
    length_scale: float
    signal_variance: float
    noise_variance: float

    def signal(self, distance: np.ndarray) -> np.ndarray:
        """Signal covariance at chord distances ``distance`` (km)."""
        return self.signal_variance * KERNELS[self.kernel](torch.as_tensor(distance), self.length_scale).numpy()


def tile_labels(rows: int, cols: int, tile: int) -> np.ndarray:
    """Label ``(rows * cols,)``, row-major, of each cell's ``tile`` x ``tile`` square (the last ones smaller)."""
    return ((np.arange(rows)[:, None] // tile) * (-(-cols // tile)) + np.arange(cols)[None, :] // tile).ravel()


def blended_tiles(rows: int, cols: int, tile: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping tiles and their partition-of-unity weights, for :func:`predict` without steps at tile edges.

    The squares of :func:`tile_labels` reach ``overlap`` cells into their neighbours. Across each edge, one
    tile's weight falls linearly from 1 to 0 over the ``2 * overlap`` cells centred on the edge while the
    other's rises: the weights of a cell sum to 1, and a blended result changes from one cell to the next
    by at most ``1 / (2 * overlap)`` of the difference between two tiles' results. A cell lies in at most
    four tiles, one per parity of the tile's row and column (so ``overlap <= tile // 2``).

    Parameters
    ----------
    rows, cols, tile
        Grid size and the tiles' side (cells).
    overlap
        Cells each tile reaches into its neighbours, 0 (:func:`tile_labels`, weight 1) to ``tile // 2``.

    Returns
    -------
    tuple of numpy.ndarray
        Labels (int) and weights ``(4, rows * cols)``, row-major, one row per parity; weight 0: in no tile.
    """
    if tile < 1 or not 0 <= overlap <= tile // 2:
        raise ValueError(f"need tile >= 1 and 0 <= overlap <= tile // 2, got tile={tile}, overlap={overlap}")
    axes = [_blended_axis(size, tile, overlap) for size in (rows, cols)]
    count = -(-cols // tile)
    labels, weights = [], []
    for (row_label, row_weight), (col_label, col_weight) in ((axes[0][:, i], axes[1][:, j])
                                                             for i in range(2) for j in range(2)):
        labels.append((row_label[:, None] * count + col_label[None, :]).ravel().astype(int))
        weights.append((row_weight[:, None] * col_weight[None, :]).ravel())
    return np.stack(labels), np.stack(weights)


def _blended_axis(size: int, tile: int, overlap: int) -> np.ndarray:
    """Per cell of one axis, ``(2, 2, size)``: (label, weight) of its tile of each parity (see blended_tiles)."""
    cell = np.arange(size)
    own, into = cell // tile, cell % tile + 0.5  # the cell's tile and its centre's position in it
    other = np.where(into < tile / 2, own - 1, own + 1)
    weight = np.clip((np.minimum(into, tile - into) + overlap) / (2 * overlap), 0, 1) if overlap else np.ones(size)
    weight = np.where((other < 0) | (other * tile >= size), 1.0, weight)  # no tile beyond the grid's edge
    result = np.zeros((2, 2, size))
    result[:, own % 2, cell], result[:, 1 - own % 2, cell] = (own, weight), (other, 1.0 - weight)
    return result


def fit_covariance(
    positions: list[np.ndarray],
    values: list[np.ndarray],
    kernel: str = "matern32",
    *,
    block: int = 200,
    max_blocks: int = 16,
    rng: np.random.Generator | None = None,
) -> Covariance:
    """Fit a covariance to anomalies by maximum composite likelihood (see the module description).

    Parameters
    ----------
    positions
        Per independent field (time step), unit vectors ``(n, 3)`` of the observations.
    values
        Per field, the anomalies ``(n,)`` (zero-mean model).
    kernel
        ``"matern32"``, ``"exponential"`` or ``"gaussian"`` (:data:`KERNELS`).
    block, max_blocks
        Largest block and number of blocks of the composite likelihood.
    rng
        Random generator of the block centres.

    Returns
    -------
    Covariance
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    blocks = _blocks(positions, values, block, max_blocks, rng)
    size = max(len(v) for _, v in blocks)
    distance = np.full((len(blocks), size, size), _FAR_KM)
    pad = np.ones((len(blocks), size), dtype=bool)
    y = np.zeros((len(blocks), size))
    for b, (u, v) in enumerate(blocks):
        distance[b, : len(v), : len(v)] = chord_km(u, u)
        pad[b, : len(v)] = False
        y[b, : len(v)] = v
    n = int((~pad).sum())
    spacing = [np.sort(d[: len(v), : len(v)], axis=1)[:, 1] for d, (_, v) in zip(distance, blocks) if len(v) > 1]
    low, high = 0.25 * float(np.median(np.concatenate(spacing))), 2.0 * EARTH_RADIUS_KM
    diagonal, distance = np.arange(size), torch.from_numpy(distance)

    def correlation(theta: np.ndarray) -> torch.Tensor:
        length, ratio = np.exp(theta)
        matrix = KERNELS[kernel](distance, float(length))
        matrix[:, diagonal, diagonal] = torch.from_numpy(np.where(pad, 1.0, 1.0 + ratio + _JITTER))
        return matrix

    values_t = torch.from_numpy(y[:, :, None])

    def terms(theta: np.ndarray) -> tuple[float, float] | None:
        """``y' C^-1 y`` and ``log det C`` of the correlation matrices, None where one is not positive definite."""
        factor, info = torch.linalg.cholesky_ex(correlation(theta))
        if bool(info.any()):
            return None
        quad = float((torch.linalg.solve_triangular(factor, values_t, upper=False) ** 2).sum())
        return quad, 2.0 * float(torch.log(torch.diagonal(factor, dim1=1, dim2=2)).sum())

    def objective(theta: np.ndarray) -> float:
        found = terms(theta)
        if found is None:
            return 1e300
        return 0.5 * (n * np.log(max(found[0], 1e-300) / n) + found[1])

    with _one_thread():
        starts = [np.log([length, ratio]) for length in np.geomspace(low, high, 8) for ratio in (1e-2, 0.3)]
        start = min(starts, key=objective)
        bounds = [(np.log(low), np.log(high)), tuple(np.log(_RATIO_BOUNDS))]
        best = scipy.optimize.minimize(objective, start, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-6})
        theta = best.x if best.fun <= objective(start) else start
        signal = terms(theta)[0] / n
    length, ratio = np.exp(theta)
    return Covariance(kernel, float(length), float(signal), float(ratio * signal))


def fit_levels(positions: Sequence[np.ndarray], values: Sequence[np.ndarray], kernel: str = "matern32", *,
               block: int = 200, max_blocks: int = 16, rng: np.random.Generator | None = None) -> list[Covariance]:
    """One fitted covariance per level (:func:`fit_covariance`); levels with fewer than
    :data:`MIN_FIT_OBSERVATIONS` observations borrow the nearest fitted level's.

    Parameters
    ----------
    positions
        Per independent field (time step, patch), unit vectors ``(n, 3)`` of its columns.
    values
        Per field, the anomalies ``(levels, n)``, NaN where a column has no value at a level.
    kernel, block, max_blocks, rng
        See :func:`fit_covariance`.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    fits: list[Covariance | None] = []
    for level in range(values[0].shape[0] if len(values) else 0):
        level_positions, level_values = [], []
        for u, field in zip(positions, values):
            known = np.flatnonzero(np.isfinite(field[level]))
            if known.size >= 2:
                level_positions.append(u[known])
                level_values.append(field[level, known])
        count = sum(v.size for v in level_values)
        fits.append(fit_covariance(level_positions, level_values, kernel, block=block, max_blocks=max_blocks,
                                   rng=rng)
                    if count >= MIN_FIT_OBSERVATIONS else None)
    fitted = [i for i, f in enumerate(fits) if f is not None]
    if not fitted:
        raise ValueError(f"no level has {MIN_FIT_OBSERVATIONS} observations to fit a covariance to; "
                         "sample more profiles or pass a longer window.")
    return [f if f is not None else fits[min(fitted, key=lambda j: abs(j - i))] for i, f in enumerate(fits)]


def _blocks(positions: list[np.ndarray], values: list[np.ndarray], block: int, max_blocks: int,
            rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Blocks of the composite likelihood: whole fields, or the ``block`` nearest to random centres."""
    blocks = []
    for u, v in zip(positions, values):
        if len(v) <= block:
            blocks.append((u, v))
            continue
        tree = cKDTree(u)
        for centre in rng.choice(len(v), size=-(-len(v) // block), replace=False):
            _, index = tree.query(u[centre], k=block)
            blocks.append((u[index], v[index]))
    if len(blocks) > max_blocks:
        blocks = [blocks[i] for i in np.sort(rng.choice(len(blocks), size=max_blocks, replace=False))]
    return blocks


def predict(
    sources: np.ndarray,
    values: np.ndarray,
    targets: np.ndarray,
    tiles: np.ndarray,
    *,
    cov: Covariance | Sequence[Covariance],
    neighbours: int = 32,
    local_variance: bool = True,
    with_variance: bool = True,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Local GP posterior mean and predictive variance at ``targets`` (unit vectors), tile by tile.

    Each tile (label in ``tiles``) uses the ``neighbours`` sources nearest to the centre of its
    targets. The predictive variance is ``s^2 - k*' K^-1 k* + n^2``. With ``local_variance``, the
    tile's variances ``s^2`` and ``n^2`` are scaled by ``(y' K^-1 y + m) / (k + m)``, the local
    maximum-likelihood scale of its ``k`` neighbours' anomalies ``y`` shrunk towards 1 with the weight
    of ``m`` = :data:`PRIOR_WEIGHT` observations; the mean does not change. Without sources the mean
    is 0 and the variance the prior's, ``s^2 + n^2``. With ``weights``, the tiles overlap (as from
    :func:`blended_tiles`) and each target's mean and variance are its tiles' weighted sums: no steps
    where one tile's neighbours or variance scale give way to the next one's.

    Parameters
    ----------
    sources
        ``(n, 3)`` unit vectors of the observations.
    values
        ``(n,)`` anomalies, or ``(levels, n)`` with NaN where a source has no value at a level (it is
        left out of that level's analysis; the neighbours are chosen among all sources).
    targets, tiles
        ``(m, 3)`` unit vectors of the targets and their tile labels ``(m,)``, or ``(copies, m)`` with ``weights``.
    cov
        The covariance, or one per level of ``values``.
    neighbours, local_variance
        See above.
    with_variance
        False skips the variance (returned as None), which costs most of the work.
    weights
        ``(copies, m)``, each target's weight in its tile of each copy (a partition of unity; 0: not in one).

    Returns
    -------
    tuple of numpy.ndarray
        Mean and variance, ``(m,)`` or ``(levels, m)`` like ``values``.
    """
    covariances = [cov] if isinstance(cov, Covariance) else list(cov)
    y = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if len(covariances) != y.shape[0] or y.shape[1] != sources.shape[0]:
        raise ValueError(f"need one covariance per level and one value per source, got {len(covariances)} "
                         f"covariances, values {y.shape} and {sources.shape[0]} sources")
    shape = (y.shape[0], len(targets)) if np.ndim(values) == 2 else (len(targets),)
    if sources.shape[0] == 0:
        prior = np.array([c.signal_variance + c.noise_variance for c in covariances])
        variance = np.broadcast_to(prior[:, None], (y.shape[0], len(targets))).reshape(shape).copy()
        return np.zeros(shape), variance if with_variance else None
    if sources.shape[0] <= neighbours:  # every tile would use all the sources: one tile, one solve per level
        tiles, weights = np.zeros(len(targets), dtype=int), None
    if weights is None:
        mean, variance = _predict_tiles(sources, y, targets, tiles, covariances, neighbours, local_variance,
                                        with_variance)
    else:
        copy, target = np.nonzero(weights > 0)
        labels = np.unique(tiles[copy, target], return_inverse=True)[1] * len(tiles) + copy  # apart per copy
        parts = _predict_tiles(sources, y, targets[target], labels, covariances, neighbours, local_variance,
                               with_variance)
        mean, variance = [None if part is None else np.stack([np.bincount(target, level, minlength=len(targets))
                                                              for level in part * weights[copy, target]])
                          for part in parts]
    return mean.reshape(shape), None if variance is None else variance.reshape(shape)


def _predict_tiles(sources: np.ndarray, y: np.ndarray, targets: np.ndarray, tiles: np.ndarray,
                   covariances: Sequence[Covariance], neighbours: int, local_variance: bool,
                   with_variance: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean and variance ``(levels, m)`` of :func:`predict` with tiles that do not overlap, ``y`` ``(levels, n)``."""
    labels, slot_of, counts = np.unique(tiles, return_inverse=True, return_counts=True)
    order = np.argsort(slot_of, kind="stable")
    rank = np.empty(len(targets), dtype=int)
    rank[order] = np.arange(len(targets)) - np.repeat(np.cumsum(counts) - counts, counts)
    width = int(counts.max())
    padded = np.zeros((labels.size, width, 3))
    padded[slot_of, rank] = targets
    centres = np.zeros((labels.size, 3))
    np.add.at(centres, slot_of, targets)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    k = min(neighbours, sources.shape[0])
    _, index = cKDTree(sources).query(centres, k=k)
    index = index.reshape(labels.size, k)
    mean = np.zeros((labels.size, y.shape[0], width))
    variance = np.zeros((labels.size, y.shape[0], width)) if with_variance else None
    step = max(1, _BATCH_VALUES // (y.shape[0] * k * (k + width)))
    with _one_thread():
        for start in range(0, labels.size, step):
            part = slice(start, start + step)
            _predict_batch(sources[index[part]], np.moveaxis(y[:, index[part]], 0, 1), padded[part], covariances,
                           mean[part], None if variance is None else variance[part], local_variance)
    return mean[slot_of, :, rank].T, None if variance is None else variance[slot_of, :, rank].T


def _predict_batch(near: np.ndarray, y: np.ndarray, targets: np.ndarray, covariances: Sequence[Covariance],
                   mean: np.ndarray, variance: np.ndarray | None, local_variance: bool) -> None:
    """Fill ``mean`` and ``variance`` ``(tile, level, target)`` (None: the mean only) from each tile's
    neighbours ``near`` with anomalies ``y`` ``(tile, level, neighbour)``, NaN where a neighbour has no
    value at a level."""
    y = torch.from_numpy(y)
    known = torch.isfinite(y)
    kinds = [[getattr(c, name) for c in covariances] for name in ("kernel", "length_scale", "signal_variance")]
    gram = level_signals(torch.from_numpy(chord_km(near, near)), *kinds)
    cross = level_signals(torch.from_numpy(chord_km(targets, near)), *kinds).mul_(known[:, :, None, :])
    gram.mul_(known[..., :, None] & known[..., None, :])  # a missing value: its row and column cleared ...
    noise = torch.tensor([c.noise_variance + _JITTER * c.signal_variance for c in covariances], dtype=y.dtype)
    gram.diagonal(dim1=-2, dim2=-1).add_(torch.where(known, noise[:, None], 1.0))  # ... and 1 on the diagonal
    anomalies = torch.where(known, y, 0.0)
    factor = torch.linalg.cholesky(gram)
    weights = torch.cholesky_solve(anomalies[..., None], factor)  # K^-1 y
    mean[:] = (cross @ weights)[..., 0].numpy()
    if variance is None:
        return
    half = torch.linalg.solve_triangular(factor, cross.mT, upper=False)
    prior = np.array([c.signal_variance + c.noise_variance for c in covariances])[:, None]
    floor = np.array([c.noise_variance for c in covariances])[:, None]
    variance[:] = np.maximum(prior - half.square_().sum(dim=-2).numpy(), floor)  # k*' K^-1 k* = |L^-1 k*|^2
    if local_variance:
        quad = (anomalies[..., None, :] @ weights)[..., 0, 0].numpy()
        variance *= ((quad + PRIOR_WEIGHT) / (known.sum(dim=-1).numpy() + PRIOR_WEIGHT))[..., None]


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: small solves gain nothing from threads, and threaded LAPACK stalls on a busy CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
