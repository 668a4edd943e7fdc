"""Per-column PCA (EOF) truncation: the linear answer to the autoencoder's compression problem.

Each water column (the depth levels of one time, latitude and longitude) is normalised per level with
the same statistics the autoencoder uses (mean and standard deviation of every valid value of the
level), and represented by its amplitudes on the ``k`` leading EOFs of the training columns.

Columns that do not reach the deepest level (below-bottom NaN) are handled as follows:

- **Fitting** uses the *complete* columns only (every level valid), so every covariance entry comes
  from the same columns and the EOFs are orthonormal over all levels. The per-level mean and standard
  deviation still use every valid value, as the autoencoder's do.
- **Encoding** a column with gaps is a *gappy EOF projection* (:func:`gappy_amplitudes`): the amplitudes
  are the least-squares fit of the EOFs to the column's valid levels only (the minimum-norm one when it
  has fewer valid levels than components), which rebuilds those levels as well as ``k`` EOFs can. For a
  complete column this is the ordinary orthogonal projection. The exact fit is ill-conditioned when a
  column has about ``k`` valid levels (the EOFs restricted to a few upper levels are nearly collinear):
  amplitudes of shelf columns can reach hundreds of times their standard deviation while the valid levels
  are still fitted well. That is the best this baseline can do for those levels, so it is what it
  scores with; where amplitudes of the usual size matter (the autoencoder's linear path, whose latents
  feed the diffusion model), the fit is regularised by the EOF variances against the truncation noise
  (:attr:`PCACompressor.prior_penalty`, the ``penalty`` of :func:`gappy_amplitudes`).
- **Decoding** puts NaN below each column's bottom, as :func:`xdepthrecon.decode` does, from the
  ``ocean_levels`` that :meth:`PCACompressor.encode` stores beside the latent.

Everything runs column by column through :func:`xarray.apply_ufunc`, so dask-backed cubes stay lazy;
:meth:`PCACompressor.fit` reads the training cube in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import numpy as np
import torch
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import as_cube

#: Floor (degC) of the per-level standard deviation, as in :func:`xdepthrecon.train_autoencoder`.
_MIN_STD = 1e-3
#: Relative cutoff of small singular values in the gappy least-squares fit.
_RCOND = 1e-8
_SPACE = ("time", "latitude", "longitude")
#: Floor (normalised units squared) of an EOF variance in :attr:`PCACompressor.prior_penalty`.
_TINY_VARIANCE = 1e-12


@dataclass(frozen=True, eq=False)
class PCACompressor:
    """EOF truncation of water columns, fitted with :meth:`fit`.

    Attributes
    ----------
    depth
        Depth levels (m) of the training cube, shape ``(n_levels,)``.
    mean, std
        Per-level normalisation statistics (degC), shape ``(n_levels,)``.
    offset
        Mean of the complete training columns in normalised units, shape ``(n_levels,)``; the
        EOFs describe anomalies about it.
    components
        Orthonormal EOFs in normalised units, leading first, shape ``(n_levels, n_components)``.
    explained_variance
        Variance (normalised units squared) of the complete training columns along each EOF,
        shape ``(n_components,)``.
    total_variance
        Total variance (normalised units squared, summed over levels) of the complete training columns.

    Examples
    --------
    >>> pca = PCACompressor.fit(train, n_components=12)                     # doctest: +SKIP
    >>> back = pca.decode(pca.encode(test))                                  # doctest: +SKIP
    """

    depth: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    offset: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    total_variance: float

    @property
    def n_components(self) -> int:
        """Number of EOFs kept (latent channels)."""
        return self.components.shape[1]

    @property
    def noise_variance(self) -> float:
        """Variance per level left out by the truncation (normalised units squared); 0 with every EOF kept."""
        left = self.total_variance - float(self.explained_variance.sum())
        return max(left, 0.0) / self.depth.size

    @property
    def prior_penalty(self) -> np.ndarray:
        """Ridge weights of a gappy fit regularised by the EOF variances: ``noise_variance / explained_variance``.

        With them, :func:`gappy_amplitudes` gives the posterior mean of the amplitudes of a cut column
        under a Gaussian prior (variance ``explained_variance``) and independent truncation noise.
        """
        return self.noise_variance / np.maximum(self.explained_variance, _TINY_VARIANCE)

    @classmethod
    def fit(
        cls,
        cube: xr.Dataset | xr.DataArray,
        n_components: int,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> PCACompressor:
        """Fit per-level statistics and EOFs on a training cube.

        Parameters
        ----------
        cube
            Training cube in any layout :func:`xdepthrecon.standardize` understands; may be dask-backed.
        n_components
            Number of EOFs to keep, 1 to the number of depth levels.
        mean, std
            Per-level statistics (degC) to normalise with, e.g. an autoencoder's ``ae.mean`` and
            ``ae.std``; default: those of ``cube`` (every valid value of each level; std floored at 1e-3).

        Returns
        -------
        PCACompressor

        Raises
        ------
        ValueError
            When ``n_components`` is out of range, a level has no valid value, or no column is complete.
        """
        thetao = as_cube(cube).thetao
        levels = thetao.sizes["depth"]
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) \
                or not 1 <= n_components <= levels:
            raise ValueError(f"n_components must be an integer from 1 to the number of depth levels ({levels}), "
                             f"got {n_components!r}")
        x = thetao.astype(np.float64)
        complete = x.notnull().all("depth")
        filled = x.where(complete, 0.0)
        moments = dask.compute(
            x.mean(_SPACE), x.std(_SPACE), complete.sum(), filled.sum(_SPACE),
            xr.dot(filled, filled.rename(depth="level"), dim=_SPACE),
        )
        level_mean, level_std, count, column_sum, second = (np.asarray(m.values, dtype=np.float64) for m in moments)
        empty = thetao.depth.values[np.isnan(level_mean)]
        if empty.size:
            raise ValueError(f"depth levels {empty.tolist()} m hold no valid value in the training cube; "
                             "drop them (cube.sel(depth=...)) or fit on a region with ocean at those depths.")
        if count == 0:
            raise ValueError("no column of the training cube has a valid value at every depth level, so no EOF "
                             "can be fitted; drop the deepest levels or fit on a deeper region.")
        mean = level_mean if mean is None else _level_vector("mean", mean, levels)
        std = np.maximum(level_std, _MIN_STD) if std is None else _level_vector("std", std, levels)
        column_mean = column_sum / count
        covariance = (second / count - np.outer(column_mean, column_mean)) / np.outer(std, std)
        variance, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
        order = np.argsort(variance)[::-1][:n_components]
        return cls(
            depth=np.asarray(thetao.depth.values, dtype=np.float64),
            mean=mean,
            std=std,
            offset=(column_mean - mean) / std,
            components=vectors[:, order],
            explained_variance=np.maximum(variance[order], 0.0),
            total_variance=float(np.trace(covariance)),
        )

    def encode(self, cube: xr.Dataset | xr.DataArray) -> xr.Dataset:
        """EOF amplitudes of every column; lazy on dask input.

        Parameters
        ----------
        cube
            A cube at this compressor's depth levels.

        Returns
        -------
        xarray.Dataset
            ``latent(time, channel, latitude, longitude)`` (NaN where a column has no valid level) and
            ``ocean_levels(time, latitude, longitude)``, the number of valid levels per column, as
            :func:`xdepthrecon.encode` returns them.
        """
        cube = as_cube(cube)
        self._check_levels(cube.depth.values)
        latent = xr.apply_ufunc(
            self._encode_columns, cube.thetao,
            input_core_dims=[["depth"]], output_core_dims=[["channel"]],
            dask="parallelized", output_dtypes=[np.float32],
            dask_gufunc_kwargs={"output_sizes": {"channel": self.n_components}},
        ).transpose("time", "channel", "latitude", "longitude")
        latent.attrs = {"long_name": "EOF amplitude of the per-level normalised column", "units": "1"}
        ocean_levels = cube.thetao.notnull().sum("depth").astype(np.int16)
        ocean_levels.attrs = {"long_name": "number of valid depth levels from the surface", "units": "1"}
        attrs = with_history(cube.attrs, describe_call("xdepthrecon.baselines.PCACompressor.encode",
                                                       n_components=self.n_components))
        return xr.Dataset({"latent": latent, "ocean_levels": ocean_levels}, attrs=attrs)

    def decode(self, latents: xr.Dataset) -> xr.Dataset:
        """Columns rebuilt from EOF amplitudes; lazy on dask input.

        Parameters
        ----------
        latents
            Dataset with ``latent(time, channel, latitude, longitude)`` from :meth:`encode`;
            ``ocean_levels``, if present, puts NaN below the bottom of each column.

        Returns
        -------
        xarray.Dataset
            ``thetao(time, depth, latitude, longitude)`` in degC at this compressor's depth levels.
        """
        if not isinstance(latents, xr.Dataset) or "latent" not in latents.data_vars:
            raise ValueError("decode needs a Dataset with a 'latent' variable, as made by PCACompressor.encode.")
        latent = latents.latent
        if latent.sizes.get("channel") != self.n_components:
            raise ValueError(f"the latent has {latent.sizes.get('channel')} channels; this compressor has "
                             f"{self.n_components} components.")
        thetao = xr.apply_ufunc(
            self._decode_columns, latent,
            input_core_dims=[["channel"]], output_core_dims=[["depth"]],
            dask="parallelized", output_dtypes=[np.float32],
            dask_gufunc_kwargs={"output_sizes": {"depth": self.depth.size}},
        )
        thetao = thetao.assign_coords(depth=xr.DataArray(
            self.depth.copy(), dims="depth",
            attrs={"standard_name": "depth", "long_name": "depth below sea surface", "units": "m",
                   "positive": "down", "axis": "Z"}))
        if "ocean_levels" in latents.data_vars:
            thetao = thetao.where(xr.DataArray(np.arange(self.depth.size), dims="depth") < latents.ocean_levels)
        thetao = thetao.transpose("time", "depth", "latitude", "longitude")
        thetao.attrs = {"standard_name": "sea_water_potential_temperature", "long_name": "sea water temperature",
                        "units": "degC"}
        attrs = with_history(latents.attrs, describe_call("xdepthrecon.baselines.PCACompressor.decode"))
        return xr.Dataset({"thetao": thetao}, attrs=attrs)

    def _encode_columns(self, columns: np.ndarray) -> np.ndarray:
        """Gappy least-squares EOF amplitudes of ``columns`` (..., level) in degC."""
        anomaly = (np.asarray(columns, dtype=np.float64) - self.mean) / self.std - self.offset
        flat = torch.from_numpy(anomaly.reshape(-1, anomaly.shape[-1]))
        valid = ~torch.isnan(flat)
        amplitudes = gappy_amplitudes(torch.where(valid, flat, 0.0), valid, torch.from_numpy(self.components))
        return amplitudes.numpy().reshape(*anomaly.shape[:-1], self.n_components).astype(np.float32)

    def _decode_columns(self, latent: np.ndarray) -> np.ndarray:
        """Columns (..., level) in degC from amplitudes (..., channel)."""
        normalised = self.offset + np.asarray(latent, dtype=np.float64) @ self.components.T
        return (normalised * self.std + self.mean).astype(np.float32)

    def _check_levels(self, depth: np.ndarray) -> None:
        given = np.asarray(depth, dtype=np.float64)
        if given.shape != self.depth.shape or not np.allclose(given, self.depth, rtol=1e-6, atol=1e-3):
            raise ValueError(f"the cube's {given.size} depth levels differ from the {self.depth.size} this compressor "
                             "was fitted on; select or interpolate them first (cube.interp(depth=pca.depth)).")


def gappy_amplitudes(
    anomaly: torch.Tensor, valid: torch.Tensor, components: torch.Tensor, penalty: torch.Tensor | None = None
) -> torch.Tensor:
    """Least-squares amplitudes of columns on components, fitted to each column's valid levels only.

    Parameters
    ----------
    anomaly
        Columns ``(n, levels)`` (values at invalid levels are ignored).
    valid
        Boolean ``(n, levels)``: which levels of each column count.
    components
        Basis ``(levels, k)``.
    penalty
        Optional ridge weights ``(k,)``: minimise ``|| (anomaly - a @ components.T)[valid] ||^2 + sum(penalty * a^2)``
        instead (with ``noise_variance / eof_variance`` this is the amplitudes' posterior mean). Complete
        columns of an orthonormal basis are then projected without it, as in the exact fit.

    Returns
    -------
    torch.Tensor
        ``(n, k)`` in the dtype of ``components``: per column, the minimum-norm minimiser of
        ``|| (anomaly - amplitudes @ components.T)[valid] ||`` (the orthogonal projection for a complete
        column of an orthonormal basis), or the regularised one; NaN for a column without valid levels.
        One solve is made per distinct pattern of valid levels (below-bottom gaps give at most one per
        level count).
    """
    out = torch.full((anomaly.shape[0], components.shape[1]), float("nan"), dtype=components.dtype,
                     device=anomaly.device)
    patterns, which = torch.unique(valid, dim=0, return_inverse=True)
    for index, pattern in enumerate(patterns):
        if pattern.any():
            rows = which == index
            part = components[pattern]
            if penalty is None or not bool((penalty > 0).any()) or bool(pattern.all()):
                solve = torch.linalg.pinv(part, rtol=_RCOND)
            else:
                gram = part.T @ part + torch.diag(penalty.to(part))
                solve = torch.linalg.solve(gram, part.T)
            out[rows] = anomaly[rows][:, pattern].to(components.dtype) @ solve.T
    return out


def _level_vector(name: str, values: np.ndarray, levels: int) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float64).reshape(-1)
    if vector.shape != (levels,) or not np.all(np.isfinite(vector)) or (name == "std" and np.any(vector <= 0)):
        raise ValueError(f"{name} must hold {levels} finite values, one per depth level"
                         f"{' (all positive)' if name == 'std' else ''}; got {np.asarray(values).shape}")
    return vector
