"""The PCA (EOF truncation) baseline: a cube rebuilt from the leading EOF amplitudes of its columns."""

from __future__ import annotations

import xarray as xr

from xdepthrecon.stats.pca import PCACompressor


def pca_compress(
    train: xr.Dataset | xr.DataArray,
    test: xr.Dataset | xr.DataArray,
    n_components: int,
) -> xr.Dataset:
    """Fit EOFs on ``train`` and return ``test`` as rebuilt from its ``n_components`` leading amplitudes.

    Parameters
    ----------
    train
        Cube the normalisation and EOFs are fitted on (see :meth:`PCACompressor.fit`).
    test
        Cube to compress, at the same depth levels.
    n_components
        Number of EOFs kept.

    Returns
    -------
    xarray.Dataset
        ``thetao(time, depth, latitude, longitude)`` in degC, NaN where ``test`` has no ocean.

    Examples
    --------
    >>> rebuilt = pca_compress(cube.isel(time=slice(0, 9)), cube.isel(time=slice(9, None)), 12)  # doctest: +SKIP
    """
    compressor = PCACompressor.fit(train, n_components)
    return compressor.decode(compressor.encode(test))
