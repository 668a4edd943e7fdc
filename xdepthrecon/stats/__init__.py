"""Numerical kernels with no xarray: geometry, seasonal fits, covariances, PCA, smoothing."""
