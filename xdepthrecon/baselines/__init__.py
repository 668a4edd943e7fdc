"""Baselines a user would pick instead of the learned models; every learned result is scored beside them."""

from xdepthrecon.baselines.analysis import classical_analysis
from xdepthrecon.baselines.climatology import climatology
from xdepthrecon.baselines.interpolation import interpolate
from xdepthrecon.baselines.optimal_interpolation import optimal_interpolation
from xdepthrecon.baselines.pca import pca_compress
from xdepthrecon.baselines.sst_regression import sst_regression
from xdepthrecon.stats.pca import PCACompressor

__all__ = ["PCACompressor", "classical_analysis", "climatology", "interpolate", "optimal_interpolation", "pca_compress",
           "sst_regression"]
