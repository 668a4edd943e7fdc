"""The ``depthrecon`` accessor: ``ds.depthrecon.<method>`` for Datasets and DataArrays.

Each method is a thin delegation to a public function of the package, so that
``ds.depthrecon.standardize(...)`` is ``xdepthrecon.standardize(ds, ...)``. The accessor holds no
state beyond the object it was made for.
"""

from __future__ import annotations

import xarray as xr

from xdepthrecon.evaluation import plot as _plot
from xdepthrecon.io.cube import standardize, standardize_surface
from xdepthrecon.encoding import decode, encode
from xdepthrecon.gridding import grid_profiles
from xdepthrecon.evaluation.metrics import evaluate
from xdepthrecon.reconstruct import reconstruct
from xdepthrecon.sampling import sample_profiles


class DepthReconAccessor:
    """Ocean depth reconstruction methods on an xarray object (``obj.depthrecon``)."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def standardize(self, **kwargs) -> xr.Dataset:
        """Return the canonical cube; see :func:`xdepthrecon.standardize` for the arguments."""
        return standardize(self._obj, **kwargs)

    def standardize_surface(self, **kwargs) -> xr.Dataset:
        """Return the canonical surface field; see :func:`xdepthrecon.standardize_surface`."""
        return standardize_surface(self._obj, **kwargs)

    def encode(self, autoencoder, **kwargs) -> xr.Dataset:
        """Encode this cube to the autoencoder's latent; see :func:`xdepthrecon.encode`."""
        return encode(self._obj, autoencoder, **kwargs)

    def decode(self, autoencoder, **kwargs) -> xr.Dataset:
        """Decode these latents back to a temperature cube; see :func:`xdepthrecon.decode`."""
        return decode(self._obj, autoencoder, **kwargs)

    def sample_profiles(self, **kwargs) -> xr.Dataset:
        """Simulate profiles observed in this truth cube; see :func:`xdepthrecon.sample_profiles`."""
        return sample_profiles(self._obj, **kwargs)

    def grid_profiles(self, profiles: xr.Dataset, **kwargs) -> xr.Dataset:
        """Grid ``profiles`` onto this cube's grid, levels and times; see :func:`xdepthrecon.grid_profiles`."""
        return grid_profiles(profiles, like=self._obj, **kwargs)

    def reconstruct(self, profiles: xr.Dataset, sst, model, **kwargs) -> xr.Dataset:
        """Reconstruct temperature on this grid from profiles and SST; see :func:`xdepthrecon.reconstruct`."""
        return reconstruct(self._obj, profiles, sst, model, **kwargs)

    def evaluate(self, truth: xr.Dataset | xr.DataArray, **kwargs) -> xr.Dataset:
        """Score this prediction against ``truth``; see :func:`xdepthrecon.evaluate`."""
        return evaluate(self._obj, truth, **kwargs)

    def plot_map(self, depth: float, **kwargs):
        """Map at one depth; see :func:`xdepthrecon.evaluation.plot.plot_map`."""
        return _plot.plot_map(self._obj, depth, **kwargs)

    def plot_section(self, latitude: float | None = None, longitude: float | None = None, **kwargs):
        """Depth section along a latitude or longitude; see :func:`xdepthrecon.evaluation.plot.plot_section`."""
        return _plot.plot_section(self._obj, latitude=latitude, longitude=longitude, **kwargs)

    def plot_profile(self, latitude: float | None = None, longitude: float | None = None, **kwargs):
        """One column's profile with its spread; see :func:`xdepthrecon.evaluation.plot.plot_profile`."""
        return _plot.plot_profile(self._obj, latitude=latitude, longitude=longitude, **kwargs)

    def plot_scores(self, metric: str = "rmse", **kwargs):
        """Scores of an ``evaluate`` output against depth; see :func:`xdepthrecon.evaluation.plot.plot_scores`."""
        return _plot.plot_scores(self._obj, metric=metric, **kwargs)


xr.register_dataset_accessor("depthrecon")(DepthReconAccessor)
xr.register_dataarray_accessor("depthrecon")(DepthReconAccessor)
