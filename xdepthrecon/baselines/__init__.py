"""Baselines a user would pick instead of the learned models; every learned result is scored beside them."""

from xdepthrecon.stats.pca import PCACompressor, pca_compress

__all__ = ["PCACompressor", "pca_compress"]

from xdepthrecon.baselines.climatology import climatology  # noqa: E402
from xdepthrecon.baselines.interpolation import interpolate  # noqa: E402
from xdepthrecon.baselines.optimal_interpolation import optimal_interpolation  # noqa: E402
from xdepthrecon.baselines.sst_regression import sst_regression  # noqa: E402

__all__ += ["climatology", "interpolate", "optimal_interpolation", "sst_regression"]
