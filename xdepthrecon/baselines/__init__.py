"""Baselines a user would pick instead of the learned models; every learned result is scored beside them."""

from xdepthrecon.baselines.pca import PCACompressor, pca_compress

__all__ = ["PCACompressor", "pca_compress"]
